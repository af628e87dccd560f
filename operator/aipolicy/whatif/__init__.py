"""What-if: ``aipolicy simulate`` runs the operator's own scaling on a trace, offline.

:mod:`.engine` is the calibrated vLLM serving model, :mod:`.run` a run under one autoscaler
(the operator's ``decide_replicas``, :mod:`.baselines` HPA and KEDA, static), :mod:`.report`
the table, JSON and plot, :mod:`.traces` and :mod:`.prometheus` the traffic, :mod:`.manifests`
the specs through the operator's models, :mod:`.cli` the command. See docs/serving-model.md.
"""
