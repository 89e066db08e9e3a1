"""Array transforms of AMIF: intensity normalisation, identifier masks, Haar wavelets, padding."""
