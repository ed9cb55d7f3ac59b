"""Chrysos, Favaro & Zafeiriou, *Motion deblurring of faces* (IJCV): hourglass + identity-preserving cGAN."""
