"""Pure decisions: functions of spec + observations + now, returning decisions and reasons.

Nothing in this package reads a clock, the network or kopf; the controllers gather
observations, call these functions and apply what they return.
"""
