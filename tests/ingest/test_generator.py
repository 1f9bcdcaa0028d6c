import csv
from collections import Counter

import numpy as np

from spotify_stream.ingest.generator import ANOMALY_MANIFEST, GENRES, generate
from spotify_stream.ingest.sources import ALBUMS_FILE, ARTISTS_FILE, FEATURES_FILE, TRACKS_FILE


def read(path):
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def test_same_seed_same_bytes(tmp_path):
    generate(tmp_path / "a", 300, seed=5, anomalies=0.05)
    generate(tmp_path / "b", 300, seed=5, anomalies=0.05)
    generate(tmp_path / "c", 300, seed=6, anomalies=0.05)
    for name in (ARTISTS_FILE, ALBUMS_FILE, TRACKS_FILE, FEATURES_FILE, ANOMALY_MANIFEST):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / TRACKS_FILE).read_bytes() != (
        tmp_path / "c" / TRACKS_FILE
    ).read_bytes()


def test_distributions_are_realistic(tmp_path):
    generate(tmp_path, 3000, seed=1)
    albums = read(tmp_path / ALBUMS_FILE)
    artists = read(tmp_path / ARTISTS_FILE)
    assert len({r["track_id"] for r in albums}) == 3000
    per_album = Counter(r["album_id"] for r in albums)
    assert max(per_album.values()) >= 10 and np.mean(list(per_album.values())) > 3
    assert sum(1 for r in albums if r["artist_1"]) > 300  # multi-artist tracks
    precisions = Counter(len(r["release_date"]) for r in albums)
    assert set(precisions) == {4, 7, 23}  # year, year-month, full timestamp
    years = [int(r["release_date"][:4]) for r in albums]
    assert min(years) < 1990 and 2020 <= max(years) <= 2023
    assert any("\n" in r["track_name"] for r in albums) and any("," in r["label"] for r in albums)
    assert any(not r["name"].isascii() for r in artists)
    popularity = sorted((int(a["artist_popularity"]) for a in artists), reverse=True)
    assert popularity[0] > 80 and np.median(popularity) < popularity[0] - 15  # long tail
    followers = np.array([float(a["followers"]) for a in artists])
    assert followers.max() > 50 * np.median(followers)


def test_features_separate_by_genre_group(tmp_path):
    generate(tmp_path, 3000, seed=2)
    features = {r["id"]: r for r in read(tmp_path / FEATURES_FILE)}
    assert len(features) == 3000
    energy = np.array([float(r["energy"]) for r in features.values()])
    acoustic = np.array([float(r["acousticness"]) for r in features.values()])
    # classical/ambient (acoustic, calm) and the rest form separate groups
    calm = acoustic > 0.5
    assert 0.05 < calm.mean() < 0.4
    assert energy[calm].mean() < 0.35 < energy[~calm].mean()
    assert len(GENRES) >= 8


def test_anomaly_fraction_and_manifest(tmp_path):
    written = generate(tmp_path, 2000, seed=4, anomalies=0.1)
    listed = read(tmp_path / ANOMALY_MANIFEST)
    per_file = Counter(r["file"] for r in listed)
    for name, total in written.items():
        clean = total - per_file[name]
        assert abs(per_file[name] / clean - 0.1) < 0.03, name
    assert {r["reason"] for r in listed} >= {
        "popularity_out_of_range",
        "missing_id",
        "bad_value",
        "duplicate_id",
        "negative_duration",
        "bad_date",
        "tempo_not_positive",
        "feature_out_of_range",
    }
