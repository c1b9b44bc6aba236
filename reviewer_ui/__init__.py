"""The reviewers' web pages (issue 12): server-rendered Jinja2 shells with light JavaScript.

Every page is a thin shell around the JSON API of :mod:`qa_service.api`: the page's script
fetches the same routes a machine client would (with the session's CSRF header), so the
API stays the one source of truth for data, scope, masking and state transitions. Every
asset is served by the service itself (``static/vendor``, refreshed by
``vendor/refresh.sh``): no request leaves the host.
"""
