"""Plots render with the Agg backend, show what they are given, and never call show()."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from samsvae_plus import plotting  # noqa: E402


@pytest.fixture(autouse=True)
def no_show(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a plot called plt.show()")

    monkeypatch.setattr(plt, "show", refuse)
    yield
    plt.close("all")


def _masks():
    # dims z0 and z2 are identical, so clustering must put them side by side
    values = np.array(
        [
            [1.0, 0.0, 1.0, 0.0],
            [1.0, 0.0, 1.0, 0.2],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.9, 0.0, 1.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    probs = pd.DataFrame(values, index=["a", "b", "c", "d", "e"], columns=["z0", "z1", "z2", "z3"])
    groups = pd.Series({"a": "P1", "b": "P1", "d": "P2", "e": "P2"})  # c unassigned
    return probs, groups


def test_mask_heatmap_groups_rows_clusters_dims_and_paints_the_right_colours():
    probs, groups = _masks()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    returned = plotting.masks(probs, groups=groups, ax=ax, cmap="viridis")
    assert returned is ax
    shown = ax.images[0].get_array()
    rows = [t.get_text() for t in ax.get_yticklabels()]
    cols = [t.get_text() for t in ax.get_xticklabels()]
    assert rows[-1] == "c"  # unassigned last
    assert {rows.index("a"), rows.index("b")} in ({0, 1}, {2, 3})
    assert abs(cols.index("z0") - cols.index("z2")) == 1
    np.testing.assert_array_equal(shown, probs.loc[rows, cols].to_numpy())
    assert {"P1", "P2", "unassigned"} <= {t.get_text().strip() for t in ax.texts}

    # pixel check: the centre of every cell has the colormap's colour of its value
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float)
    height = pixels.shape[0]
    colormap = plt.get_cmap("viridis")
    for i in range(shown.shape[0]):
        for j in range(shown.shape[1]):
            x, y = ax.transData.transform((j, i))
            rgb = pixels[int(round(height - y)), int(round(x))]
            expected = np.array(colormap(shown[i, j])[:3]) * 255
            assert np.abs(rgb - expected).max() <= 3, (i, j, rgb, expected)


def test_ate_scatter_reports_r_and_r2_of_its_points():
    rng = np.random.default_rng(0)
    reference = pd.DataFrame(rng.normal(size=(5, 30)))
    predicted = 0.8 * reference + 0.1 * rng.normal(size=(5, 30))
    fig = plotting.ate_scatter(reference, predicted, return_fig=True)
    ax = fig.axes[0]
    points = ax.collections[0].get_offsets()
    np.testing.assert_allclose(np.asarray(points)[:, 0], reference.to_numpy().ravel())
    r = np.corrcoef(predicted.to_numpy().ravel(), reference.to_numpy().ravel())[0, 1]
    assert f"r = {r:.3f}" in ax.texts[0].get_text()


def test_calibration_curves_share_one_ideal_line():
    table = pd.DataFrame({"nominal": [0.5, 0.9], "coverage": [0.4, 0.8]})
    ax = plotting.calibration(table, label="first")
    plotting.calibration(table.assign(coverage=[0.5, 0.9]), label="second", ax=ax)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["ideal", "first", "second"]
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [0.4, 0.8])


def test_enrichment_dots_have_overlap_sizes_and_q_colours():
    table = pd.DataFrame(
        {
            "dimension": ["z0", "z1", "z0", "z1"],
            "gene_set": ["S", "S", "T", "T"],
            "overlap": [3, 0, 1, 2],
            "q_value": [0.001, 1.0, 0.5, 0.01],
        }
    )
    ax = plotting.enrichment(table)
    dots = ax.collections[0]
    assert len(dots.get_offsets()) == 3  # the test without overlap is not drawn
    np.testing.assert_allclose(dots.get_sizes(), [90, 30, 60])
    np.testing.assert_allclose(dots.get_array(), -np.log10([0.001, 0.5, 0.01]))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["S", "T"]


def test_training_curves_return_a_figure_on_request(trained_model):
    fig = plotting.training_curves(trained_model.history, return_fig=True)
    assert len(fig.axes[0].get_lines()[0].get_ydata()) == len(trained_model.history.train_elbo)
