"""The one promotion rule of refits (ctl and every family)."""

from __future__ import annotations

from pipeline.promotion import promotion


def active(acc):
    return {"validation": {"aggregated": {"accuracy": acc}}}


def test_first_model_is_promoted():
    assert promotion(0.5, None, 0.02) == (True, "first model")
    assert promotion(0.5, None, 0.02, first="first model of the family") == (
        True, "first model of the family")


def test_refused_wins_over_everything():
    assert promotion(0.99, None, 0.02, refused="too many left") == (False, "too many left")
    assert promotion(0.99, active(0.5), 0.02, refused="x") == (False, "x")


def test_worse_by_more_than_the_tolerance_is_not_promoted():
    ok, why = promotion(0.70, active(0.80), 0.02, what="gbm model")
    assert not ok
    assert why == ("aggregated accuracy 0.700 is worse than the active gbm model's 0.800 by "
                   "more than 0.02")


def test_within_the_tolerance_or_unknown_is_promoted():
    assert promotion(0.79, active(0.80), 0.02) == (
        True, "aggregated accuracy 0.790 (active model: 0.8)")
    assert promotion(0.70, active(0.80), 0.15)[0]
    assert promotion(0.10, active(None), 0.02) == (
        True, "aggregated accuracy 0.100 (active model: None)")
    assert promotion(0.10, {"validation": None}, 0.02)[0]
    assert promotion(None, active(0.8), 0.02) == (
        True, "aggregated accuracy unknown (active model: 0.8)")


def test_a_left_candidate_is_reused_only_while_the_rule_still_promotes_it(engine):
    from db.settings import Settings
    from ingest.sample import generate_sample
    from ingest.sample_source import SampleCsc, SampleSimbad
    from pipeline import classify, ingest

    sample = generate_sample(400, seed=5)
    ingest.ingest_csc(engine, SampleCsc(sample))
    ingest.ingest_simbad(engine, SampleSimbad(sample, 1), refresh_days=None)
    settings = Settings(max_unclassifiable_share=0.6)
    first = classify.refit(engine, settings)  # a candidate: its publish "was cut short"
    assert first.new_model and first.promote and first.reason == "first model"
    again = classify.refit(engine, settings)
    assert (again.model_id, again.new_model, again.promote) == (first.model_id, False, True)
    assert f"candidate model {first.model_id} was fitted on this input" in again.reason
    assert first.n_unclassifiable > 0
    strict = classify.refit(engine, settings.model_copy(update={"max_unclassifiable_share": 0}))
    assert strict.new_model and strict.model_id != first.model_id and not strict.promote
    assert "more than max_unclassifiable_share = 0" in strict.reason
