"""Data files shipped with the dataset loaders (official split lists, prompt sets)."""
