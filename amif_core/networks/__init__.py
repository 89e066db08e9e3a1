"""Neural networks of AMIF: the fusion backbone, CCWM and the C-SAMIC coupling."""
