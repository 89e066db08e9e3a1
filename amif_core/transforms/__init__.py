"""Array transforms of AMIF: intensity normalisation and identifier masks."""
