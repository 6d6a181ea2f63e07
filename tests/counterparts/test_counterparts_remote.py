"""Against the live CDS X-Match (``pytest --remote-data``): the three VizieR tables answer
with the columns cscat asks for, and a bright star gets its Gaia, 2MASS and AllWISE
counterpart."""

from __future__ import annotations

import pandas as pd
import pytest

from ingest.counterparts import CATALOGUES, CounterpartXMatch, associate_neighbours


@pytest.mark.remote_data
def test_live_xmatch_serves_the_three_tables():
    # 2CXO J000150.5+233015 (LM-STAR in MUWCLASS's set, G = 12.6)
    src = pd.DataFrame({"name": ["2CXO J000150.5+233015"], "ra": [0.4605279],
                        "dec": [23.5043391], "err_ellipse_r0": [0.807]})
    nb = CounterpartXMatch(retries=1).neighbours(src)
    assert set(nb["catalogue"]) == set(CATALOGUES)
    _, matches = associate_neighbours(src, nb)
    assert matches["cp_id"].notna().all()
    gaia = matches[matches["catalogue"] == "gaia"]
    assert gaia["cp_id"].item() == "2848205298895660416"
