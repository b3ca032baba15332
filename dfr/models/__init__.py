"""dfr's own models and their parts: DFR, the base of the models on regional features, the
regional features themselves and the frozen backbones they come from."""
