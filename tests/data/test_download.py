"""Downloads through pooch, against an HTTP server on 127.0.0.1 that serves files from a
temporary folder (nothing here reaches outside this machine): checksum verification, the
cache, corrupted downloads, pinning where no checksum is published, the missing-pooch
message, and the loaders' order (data directory first, then cache and download)."""

import hashlib
import http.server
import shutil
import sys
import threading
from functools import partial

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import samsvae_plus as sp
from samsvae_plus.data import datasets, remote_files
from samsvae_plus.data.download import download
from samsvae_plus.data.remote_files import REMOTE_FILES, RemoteFile
from samsvae_plus.errors import InputError, MissingDataFileError


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture()
def server(tmp_path, monkeypatch):
    """``(base_url, served_dir, requests)``: a local server and the paths it was asked for."""
    pytest.importorskip("pooch")
    served = tmp_path / "served"
    served.mkdir()
    requests: list[str] = []

    class Counting(_Handler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(Counting, directory=str(served))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # a proxy setting must not route it away
    monkeypatch.setenv("SAMSVAE_PLUS_CACHE", str(tmp_path / "cache"))
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served, requests
    httpd.shutdown()
    httpd.server_close()


def _tiny_h5ad(path, seed=0):
    rng = np.random.default_rng(seed)
    adata = ad.AnnData(
        rng.poisson(1.0, (6, 4)).astype(np.float32),
        obs=pd.DataFrame(
            {"perturbation": ["control", "control", "A", "A", "A_B", "B"]},
            index=[f"c{i}" for i in range(6)],
        ),
    )
    adata.write_h5ad(path)
    return adata


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _entry(base, name="tiny.h5ad", known_hash=None, path="perturbseq/tiny.h5ad"):
    return RemoteFile("tiny", path, f"{base}/{name}", known_hash, "a tiny test file")


def test_download_checks_the_hash_then_uses_the_cache(server, tmp_path):
    base, served, requests = server
    expected = _tiny_h5ad(served / "tiny.h5ad")
    entry = _entry(base, known_hash=f"sha256:{_sha256(served / 'tiny.h5ad')}")
    path = download(entry)
    assert path == tmp_path / "cache" / "perturbseq" / "tiny.h5ad"
    assert ad.read_h5ad(path).obs["perturbation"].tolist() == expected.obs["perturbation"].tolist()
    assert requests == ["/tiny.h5ad"]
    assert download(entry) == path
    assert requests == ["/tiny.h5ad"]  # the second call is served by the cache
    # a cached file damaged later fails its check and is downloaded again
    path.write_bytes(b"damaged")
    assert download(entry) == path and _sha256(path) == _sha256(served / "tiny.h5ad")
    assert len(requests) == 2


def test_md5_as_zenodo_publishes_it(server):
    base, served, _ = server
    _tiny_h5ad(served / "tiny.h5ad")
    md5 = hashlib.md5((served / "tiny.h5ad").read_bytes()).hexdigest()
    assert download(_entry(base, known_hash=f"md5:{md5}")).is_file()


def test_corrupted_download_is_refused_and_deleted(server, tmp_path):
    base, served, _ = server
    _tiny_h5ad(served / "tiny.h5ad")
    good = _sha256(served / "tiny.h5ad")
    (served / "tiny.h5ad").write_bytes(b"not the file that was published")
    with pytest.raises(InputError, match=r"does not match its checksum sha256:.* was deleted"):
        download(_entry(base, known_hash=f"sha256:{good}"))
    assert not (tmp_path / "cache" / "perturbseq" / "tiny.h5ad").exists()


def test_unpublished_checksum_is_pinned_at_the_first_download(server, tmp_path, caplog):
    base, served, requests = server
    _tiny_h5ad(served / "tiny.h5ad")
    entry = _entry(base, known_hash=None)
    with caplog.at_level("WARNING", logger="samsvae_plus.data.download"):
        path = download(entry)
    pin = path.with_name("tiny.h5ad.sha256")
    assert pin.read_text().split()[0] == _sha256(served / "tiny.h5ad")
    assert "has no published checksum; pinned its sha256" in caplog.text
    assert download(entry) == path and len(requests) == 1
    # the server's file changes: the next download must match the pin, and does not
    path.unlink()
    _tiny_h5ad(served / "tiny.h5ad", seed=1)
    with pytest.raises(InputError, match=r"has changed \(delete .*tiny\.h5ad\.sha256"):
        download(entry)


def test_missing_pooch_is_named_only_when_a_download_is_needed(server, monkeypatch):
    base, served, _ = server
    _tiny_h5ad(served / "tiny.h5ad")
    entry = _entry(base, known_hash=f"sha256:{_sha256(served / 'tiny.h5ad')}")
    monkeypatch.setitem(sys.modules, "pooch", None)  # `import pooch` now fails
    with pytest.raises(InputError, match=r'needs pooch: pip install "samsvae-plus\[data\]"'):
        download(entry)
    monkeypatch.delitem(sys.modules, "pooch")
    path = download(entry)
    monkeypatch.setitem(sys.modules, "pooch", None)
    assert download(entry) == path  # a cached file needs no pooch


def test_unreachable_file_is_a_one_line_error(server):
    base, _, _ = server
    with pytest.raises(InputError, match=r"could not download perturbseq/tiny\.h5ad .*404"):
        download(_entry(base, name="absent.h5ad", known_hash="sha256:" + "0" * 64))


def test_shared_file_served_locally_matches_its_manifest(server):
    """The shared data folder, served as a download source: a file comes through with the
    checksum of the folder's MANIFEST.sha256."""
    base, served, _ = server
    relative = "annotations/replogle2022_pathways_clusters.json"
    try:
        source = datasets.fetch(relative)
    except InputError as err:
        pytest.skip(f"shared data not available: {err}")
    shutil.copy(source, served / source.name)
    digest = datasets._manifest(datasets.data_dir())[relative]
    path = download(_entry(base, source.name, f"sha256:{digest}", path=relative))
    assert path.read_bytes() == source.read_bytes()


def test_loader_reads_the_data_directory_first_then_downloads(server, tmp_path, monkeypatch):
    base, served, requests = server
    _tiny_h5ad(served / "norman.h5ad")
    published = f"sha256:{_sha256(served / 'norman.h5ad')}"
    relative = "perturbseq/NormanWeissman2019_filtered.h5ad"
    monkeypatch.setitem(
        REMOTE_FILES, "norman2019", _entry(base, "norman.h5ad", published, path=relative)
    )
    data = tmp_path / "data"
    (data / "perturbseq").mkdir(parents=True)
    monkeypatch.setenv(datasets.ENV_VAR, str(data))
    # not in the data directory: downloaded into the cache
    adata = sp.datasets.norman2019()
    assert adata.n_obs == 6 and requests == ["/norman.h5ad"]
    assert (tmp_path / "cache" / relative).is_file()
    # in the data directory: used from there, without a request
    shutil.copy(served / "norman.h5ad", data / relative)
    assert datasets.fetch(relative) == data / relative
    assert sp.datasets.norman2019(backed="r").isbacked and len(requests) == 1
    # another version in the data directory is refused, not silently used
    _tiny_h5ad(data / relative, seed=1)
    with pytest.raises(InputError, match="does not match the published checksum"):
        sp.datasets.norman2019()


def test_missing_files_name_the_file_the_variable_and_the_way_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMSVAE_PLUS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(
        MissingDataFileError,
        match=r"human_gene_go_svd128\.npz .*SAMSVAE_PLUS_DATA.*samsvae-plus go-embedding",
    ):
        sp.datasets.go_gene_embedding(data_dir=tmp_path)
    with pytest.raises(MissingDataFileError, match=r"norman_mcfaline_devel.*norman2019\(\)"):
        sp.datasets.norman_mcfaline_devel(data_dir=tmp_path)
    with pytest.raises(MissingDataFileError, match=r"corum\.csv\.gz.*gene-set file of your own"):
        sp.datasets.gene_sets("corum", data_dir=tmp_path)
    with pytest.raises(InputError, match="screen='k562' is not available"):
        sp.datasets.replogle2022("k562", data_dir=tmp_path)


def test_without_any_data_directory_the_cache_is_used(tmp_path, monkeypatch):
    """A pip install: no data_dir, no variable, no source checkout."""
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    monkeypatch.setattr(datasets, "_CHECKOUT_DATA", tmp_path / "no-checkout")
    monkeypatch.setenv("SAMSVAE_PLUS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(MissingDataFileError, match=r"neither a data directory nor the cache"):
        datasets.fetch(datasets.GO_EMBEDDING)
    built = tmp_path / "cache" / datasets.GO_EMBEDDING
    built.parent.mkdir(parents=True)
    built.write_bytes(b"built by samsvae-plus go-embedding")
    assert datasets.fetch(datasets.GO_EMBEDDING) == built


def test_registry_entries_are_well_formed():
    lengths = {"md5": 32, "sha256": 64}
    assert len({entry.path for entry in REMOTE_FILES.values()}) == len(REMOTE_FILES)
    for name, entry in REMOTE_FILES.items():
        assert entry.name == name and entry.url.startswith("https://")
        if entry.known_hash is not None:
            algorithm, digest = entry.known_hash.split(":")
            assert len(digest) == lengths[algorithm] and int(digest, 16) >= 0
    for screen in datasets.REPLOGLE2022_SCREENS:
        assert f"replogle2022_{screen}" in REMOTE_FILES
    with pytest.raises(InputError, match="no downloadable file is called 'nope'"):
        remote_files.remote_file("nope")
