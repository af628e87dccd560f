"""GPUs are counted in the service's own extended resource, not always nvidia.com/gpu."""

from __future__ import annotations

import pytest

from aipolicy.observe import presets


@pytest.mark.parametrize(
    ("resource", "label"),
    [
        ("nvidia.com/gpu", "nvidia_com_gpu"),
        ("amd.com/gpu", "amd_com_gpu"),
        ("gpu.intel.com/i915", "gpu_intel_com_i915"),
        ("habana.ai/gaudi", "habana_ai_gaudi"),
        ("example-vendor.io/gpu-mig", "example_vendor_io_gpu_mig"),
    ],
)
def test_resource_names_are_sanitised_as_kube_state_metrics_does(resource: str, label: str) -> None:
    assert presets.ksm_resource(resource) == label


def test_gpu_hours_ask_for_the_services_resource() -> None:
    query = presets.gpu_hours("30s", resource_name="amd.com/gpu")
    assert 'resource="amd_com_gpu"' in query
    assert "nvidia" not in query
    assert 'resource="nvidia_com_gpu"' in presets.gpu_hours("30s")  # the default stays
