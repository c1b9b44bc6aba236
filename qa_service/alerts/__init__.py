"""Alerts: a call with complaint intent (C01) or a fatal finding alerts its team's supervisors.

The job that saves an analysis raises the alert in the same transaction (:mod:`.store`),
so an alert exists exactly when its analysis does; it then announces it on Redis
(:mod:`.notify`). Each web process pushes new alerts to its connected streams
(:mod:`.hub`): Redis wakes it at once, a poll of the database every second is the
always-correct fallback. Webhook deliveries are rows retried with backoff (:mod:`.webhook`).
"""
