"""The configuration that checkpoint_overhead.py and ddp.py measured their committed results
with: the demo's before the package defaults were retuned. Kept fixed, so that reruns
compare with those results."""

MODEL = {"latent_dim": 10, "guide": "correlated_basal"}
TRAINING = {"batch_size": 512, "n_particles": 1, "lr": 2e-3}
