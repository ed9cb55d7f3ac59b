"""Cluster-scale builds: a data.builders builder run as an Apache Beam pipeline (DirectRunner)
through TFDS, read back by the trainers' pipeline. Needs the optional `beam` extra
(`pip install -e ".[beam]"`), which CI does not install (docs/data.md: Beam pins protobuf and
pillow below the cpu extra's versions); without apache_beam the test is skipped, saying so."""
import pytest

beam = pytest.importorskip("apache_beam", reason="optional extra: pip install -e '.[beam]'")

import numpy as np  # noqa: E402  (after the skip: nothing heavy is imported without Beam)

from common import pipeline  # noqa: E402
from data.builders import _layout, helen_parsing  # noqa: E402
from tests.data import fixtures  # noqa: E402


def test_helen_builder_under_beam_direct_runner_matches_the_in_process_build(tmp_path):
  from apache_beam.runners.direct.direct_runner import DirectRunner  # pylint: disable=import-outside-toplevel
  manual = str(tmp_path / "helen")
  expected = fixtures.helen(manual)
  b = _layout.prepare(helen_parsing.HelenParsing, manual, str(tmp_path / "beam"),
                      beam_runner=DirectRunner())
  assert b._beam  # pylint: disable=protected-access
  ref = _layout.prepare(helen_parsing.HelenParsing, manual, str(tmp_path / "local"))
  assert ({s: b.info.splits[s].num_examples for s in b.info.splits}
          == {s: ref.info.splits[s].num_examples for s in ref.info.splits}
          == {"train": 2, "validation": 1, "test": 1, "test330": 2})
  got = {}
  for data_dir in ("beam", "local"):
    ds = pipeline.make_dataset(f"tfds:facedeblur_helen_parsing:test330@{tmp_path / data_dir}", 1,
                               training=False, keys=("sharp", "mask", "source"))
    got[data_dir] = {x["source"].numpy()[0].decode(): x for x in ds}
  assert sorted(got["beam"]) == sorted(got["local"]) == ["200_1", "300_1"]
  for name, x in got["beam"].items():
    np.testing.assert_array_equal(x["mask"].numpy()[0, ..., 0], expected[name])
    np.testing.assert_array_equal(x["sharp"].numpy(), got["local"][name]["sharp"].numpy())
