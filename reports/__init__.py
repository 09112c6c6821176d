"""Reports built from the results store: leaderboards, ablation tables, plots, HTML."""
