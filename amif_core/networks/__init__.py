"""Neural networks of AMIF: the fusion backbone, CCWM, the C-SAMIC coupling and the Haar wavelet op they use."""
