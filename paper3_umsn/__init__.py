"""Yasarla, Perazzi & Patel, *Deblurring Face Images using Uncertainty Guided Multi-Stream Semantic Networks* (TIP)."""
