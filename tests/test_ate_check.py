def _oracle(adata):
    """SAMS-VAE holding the simulator's true parameters, with a point-mass posterior."""
    import torch

    truth = adata.uns["simulation"]
    model = sp.SAMSVAE(adata, latent_dim=truth["mask"].shape[1], n_layers=0)
    rows = [list(model.registry.perturbations).index(p) for p in truth["perturbations"]]
    with torch.no_grad():
        likelihood = model.module["model"].likelihood
        likelihood.decoder.net[0].weight.copy_(torch.tensor(truth["decoder_weight"]).T)
        likelihood.decoder.net[0].bias.copy_(torch.tensor(truth["gene_offset"]))
        likelihood.log_inverse_dispersion.copy_(torch.tensor(truth["inverse_dispersion"]).log())
        model.module["model"].basal_loc.copy_(torch.tensor(truth["context_means"]))
        guide = model.module["guide"]
        guide.mask_logits[rows] = torch.where(torch.tensor(truth["mask"]) > 0, 30.0, -30.0)
        guide.embedding_loc[rows] = torch.tensor(truth["embedding"])
        guide.embedding_raw_scale.fill_(-30.0)
    model.library_stats = {"log_mean": [7.6, 7.6], "log_sd": [0.3, 0.3]}
    return model


def test_an_oracle_is_calibrated_against_the_monte_carlo_truth(small_adata):
    # With the true parameters, the only error left is the Monte Carlo error of the truth
    # itself. Drawing the model's ATE the way the truth was estimated (same cells per
    # context, common random numbers) makes the intervals allow for it: coverage is near
    # nominal. (With many more cells per draw it would fall far below.)
    truth = small_adata.uns["simulation"]
    check = _oracle(small_adata).check_ate(
        reference=truth["true_ate"].loc[CHECKED[1:6]],
        n_draws=20,
        n_cells=truth["params"]["ate_cells"],
    )
    assert check.metrics.loc["all", "pearson"] > 0.99
    assert 0.8 <= check.metrics.loc["all", "coverage"] <= 0.98
