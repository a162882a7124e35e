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
    ax = plotting.enrichment(table, q_threshold=None)  # every test, significant or not
    dots = ax.collections[0]
    assert len(dots.get_offsets()) == 3  # the test without overlap is not drawn
    np.testing.assert_allclose(dots.get_sizes(), [90, 30, 60])
    np.testing.assert_allclose(dots.get_array(), -np.log10([0.001, 0.5, 0.01]))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["S", "T"]


def test_enrichment_shows_only_tests_that_pass_q_by_default():
    table = pd.DataFrame(
        {
            "dimension": ["z0", "z1", "z0", "z1"],
            "gene_set": ["S", "S", "T", "T"],
            "overlap": [3, 0, 1, 2],
            "q_value": [0.001, 1.0, 0.5, 0.01],
        }
    )
    ax = plotting.enrichment(table)  # q <= 0.1
    dots = ax.collections[0]
    np.testing.assert_allclose(dots.get_sizes(), [90, 60])
    np.testing.assert_allclose(dots.get_array(), -np.log10([0.001, 0.01]))
    np.testing.assert_allclose(
        plotting.enrichment(table, q_threshold=0.005).collections[0].get_sizes(), [90]
    )


def test_enrichment_has_a_legend_of_dot_sizes():
    table = pd.DataFrame(
        {
            "dimension": ["z0", "z1", "z2", "z0", "z1", "z2"],
            "gene_set": ["S", "S", "S", "T", "T", "T"],
            "overlap": [1, 2, 3, 4, 6, 9],
            "q_value": [0.01] * 6,
        }
    )
    ax = plotting.enrichment(table)
    legend = ax.get_legend()
    assert legend is not None and "overlap" in legend.get_title().get_text()
    labels = [int(t.get_text()) for t in legend.get_texts()]
    # at most four entries, from the smallest to the largest overlap shown
    assert labels[0] == 1 and labels[-1] == 9 and len(labels) <= 4
    # each entry's marker has the area of a dot of that overlap
    dot_area = ax.collections[0].get_sizes()[0] / 1  # the overlap-1 dot
    for handle, label in zip(legend.legend_handles, labels, strict=True):
        assert handle.get_markersize() ** 2 == pytest.approx(dot_area * label)


def _no_dots(ax) -> bool:
    return not any(len(c.get_offsets()) for c in ax.collections)


@pytest.mark.parametrize(
    "table",
    [
        # what dimension_enrichment returns when no set holds two perturbations (Norman and
        # CORUM): no rows, object-typed columns
        pd.DataFrame(
            columns=["dimension", "gene_set", "overlap", "n_active", "q_value"], dtype=object
        ),
        # tests that share nothing
        pd.DataFrame({"dimension": ["z0"], "gene_set": ["S"], "overlap": [0], "q_value": [1.0]}),
    ],
    ids=["no tests", "no overlap"],
)
def test_enrichment_without_any_overlap_says_so(table, tmp_path):
    fig = plotting.enrichment(table, return_fig=True)
    ax = fig.axes[0]
    text = " ".join(t.get_text() for t in ax.texts)
    assert "no set passes q ≤ 0.1" in text and "no set shares a perturbation" in text
    assert _no_dots(ax)
    plotting.save_figure(fig, tmp_path / "enrichment.png")
    assert (tmp_path / "enrichment.png").stat().st_size > 0


def test_enrichment_without_a_significant_set_draws_no_non_results():
    # 25 sets, all at q = 1: the old plot drew 20 of them, alphabetically, as if they were hits
    table = pd.DataFrame(
        {
            "dimension": ["z0"] * 25,
            "gene_set": [f"SET{i:02d}" for i in range(25)],
            "overlap": [1] * 25,
            "q_value": [1.0] * 25,
        }
    )
    ax = plotting.enrichment(table, q_threshold=0.05)
    assert [t.get_text() for t in ax.texts] == ["no set passes q ≤ 0.05"]
    assert _no_dots(ax)
    assert not [t for t in ax.get_yticklabels() if t.get_text().startswith("SET")]


def test_empty_enrichment_of_the_pipeline_plots():
    from samsvae_plus.evaluate.enrichment import dimension_enrichment

    probabilities = pd.DataFrame(np.eye(3) * 0.9, index=["a", "b", "c"], columns=["z0", "z1", "z2"])
    no_sets = pd.DataFrame(index=["a", "b", "c"], columns=[], dtype=bool)
    table = dimension_enrichment(probabilities, no_sets)
    assert table.empty
    ax = plotting.enrichment(table)
    assert "no set passes" in ax.texts[0].get_text()


def test_save_figure_keeps_labels_that_stick_out_of_the_figure(tmp_path):
    # A y label far to the left of the axes lies outside the figure's own area; the saved
    # image must be cropped to the artists (bbox_inches="tight"), not to the figure.
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [-123456789, 0])
    ax.set_ylabel("a long label that sticks out", labelpad=60)
    fig.canvas.draw()
    tight = fig.get_tightbbox(fig.canvas.get_renderer())
    assert tight.x0 < 0  # the label really is outside the figure
    dpi = 50
    plotting.save_figure(fig, tmp_path / "out.png", dpi=dpi)
    height, width = plt.imread(tmp_path / "out.png").shape[:2]
    pad = 2 * 0.1 * dpi  # savefig's pad_inches on both sides
    assert width == pytest.approx(tight.width * dpi + pad, abs=2)
    assert height == pytest.approx(tight.height * dpi + pad, abs=2)
    assert not plt.fignum_exists(fig.number)  # closed after saving


def test_save_figure_that_fails_leaves_no_file(tmp_path):
    fig, ax = plt.subplots()
    ax.text(0.5, 0.5, r"$\unknowncommand$")  # mathtext fails when drawn
    with pytest.raises(ValueError):
        plotting.save_figure(fig, tmp_path / "broken.png")
    assert list(tmp_path.iterdir()) == []


def test_training_curves_return_a_figure_on_request(trained_model):
    fig = plotting.training_curves(trained_model.history, return_fig=True)
    assert len(fig.axes[0].get_lines()[0].get_ydata()) == len(trained_model.history.train_elbo)
