"""The HPA and KEDA baselines give the answers Kubernetes and KEDA document, on hand-made steps.

Sources: kubernetes.io "Horizontal Pod Autoscaling" (algorithm, tolerance 0.1, default
behavior: scale-up max(4 pods, 100 %) per 15 s with no stabilization, scale-down 100 % per
15 s after a 300 s stabilization window) and KEDA's "Scaling Deployments" (activation,
cooldownPeriod 300 s, pollingInterval 30 s).
"""

from __future__ import annotations

from aipolicy.whatif.baselines import Hpa, HpaRules, Keda, ScalingPolicyRule


def test_within_tolerance_nothing_changes() -> None:
    hpa = Hpa(min_replicas=1, max_replicas=100, target=10)
    # 43 over 4 pods at target 10: ratio 1.075, inside 1 +- 0.1
    assert hpa.decide(0, 4, 43) == 4
    # 45: ratio 1.125, outside: ceil(45 / 10) = 5
    assert hpa.decide(15, 4, 45) == 5


def test_scale_up_is_limited_to_four_pods_or_double_per_15s() -> None:
    # from 1, the load asks for 20: max(1 + 4, 1 * 2) = 5
    assert Hpa(1, 100, 10).decide(0, 1, 200) == 5
    # from 10, it asks for 40: max(10 + 4, 10 * 2) = 20
    assert Hpa(1, 100, 10).decide(0, 10, 400) == 20


def test_scale_up_period_counts_from_the_replicas_at_its_start() -> None:
    hpa = Hpa(1, 100, 10, sync_period_s=5)
    assert hpa.decide(0, 1, 1000) == 5  # +4 at t=0
    # 10 s later, still in the same 15 s period: the period started at 1, so at most 5
    assert hpa.decide(10, 5, 1000) == 5
    # at 15 s the t=0 event has left the period: from 5, max(5 + 4, 10) = 10
    assert hpa.decide(15, 5, 1000) == 10


def test_scale_down_waits_for_the_300s_stabilization_window() -> None:
    hpa = Hpa(1, 100, 10)
    assert hpa.decide(0, 10, 100) == 10  # steady at 10
    for t in range(15, 300, 15):  # the load drops to 2 replicas' worth
        assert hpa.decide(t, 10, 20) == 10, t
    # the t=0 recommendation of 10 leaves the window at 300 s; 100 % per 15 s allows 2
    assert hpa.decide(300, 10, 20) == 2


def test_stabilization_window_is_seeded_with_the_current_count() -> None:
    # maybeInitScaleDownStabilizationWindow: a new HPA does not scale down at once
    hpa = Hpa(1, 100, 10)
    assert hpa.decide(0, 8, 10) == 8
    assert hpa.decide(300, 8, 10) == 1


def test_custom_policies_select_min_and_pods_steps() -> None:
    up = HpaRules(0, (ScalingPolicyRule("Pods", 2, 60), ScalingPolicyRule("Percent", 50, 60)), "Min")
    hpa = Hpa(1, 100, 10, up=up)
    # from 10 asking 40: Pods gives 12, Percent 15, Min selects 12
    assert hpa.decide(0, 10, 400) == 12


def test_bounds_and_zero() -> None:
    assert Hpa(2, 6, 10).decide(0, 4, 1000) == 6  # maxReplicas
    assert Hpa(1, 6, 10).decide(0, 0, 1000) == 0  # an HPA at zero does nothing
    assert Hpa(1, 6, 10).decide(0, 3, None) == 3  # metric unavailable: unchanged


def test_keda_activates_from_zero_and_cools_down_to_zero() -> None:
    keda = Keda(Hpa(1, 10, 10), min_replica_count=0, cooldown_s=300)
    assert keda.poll(0, 0, 0.0, 0) == 0  # inactive at zero: stays
    assert keda.poll(30, 0, 5.0, 0) == 1  # metric > activationThreshold 0: 0 -> 1
    assert keda.poll(60, 3, 5.0, 0) == 3  # active above zero: the HPA's business
    assert keda.poll(90, 3, 0.0, 0) == 3  # inactive, cooldown running since 60
    assert keda.poll(330, 3, 0.0, 0) == 3  # 270 s
    assert keda.poll(360, 3, 0.0, 0) == 0  # 300 s since last active: N -> 0 at once


def test_keda_with_min_replicas_never_goes_to_zero() -> None:
    keda = Keda(Hpa(1, 10, 10), min_replica_count=1, last_active=0.0)
    assert keda.poll(1000, 2, 0.0, 0) == 2
