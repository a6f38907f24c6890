"""Single-cell measurements on masks: intensities, region properties, neighbours."""
