"""`aipolicy report`: what a namespace's or a team's AI cost, how fast and reliable it was.

gather.py reads the API (InferenceServices, AIBudgets) and Prometheus (one query per metric
family for every service at once, as the operator does); model.py turns those facts and readings
into a Report with pure functions; render.py writes it as a terminal table, JSON or one
self-contained HTML page. Missing data is never zero: a number nobody measured reads "no data".
"""
