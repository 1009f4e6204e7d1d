"""Training entry points for world models: codec, latent pre-encoding, dynamics, export."""
