"""Nahli, Cao & Xu, *Face Image Deblurring: A Data-Driven Strategy*: CycleGAN-labelled pairs + SRN."""
