"""The REST contract as pydantic v2 models: the one typed source of the public API.

The same models validate request bodies and query strings (a refused field is a 400 ``invalid_request`` naming the
field and the rule, :func:`base.parse`), serialise every answer (:func:`facemint_gateway.http.ok`), and generate the
OpenAPI 3.1 document (:mod:`document`), from which the SDKs are generated (``make sdk``). One module per resource:

- :mod:`tasks`: detection tasks and the webhook's body
- :mod:`library`: face libraries, persons, reference faces, compare
- :mod:`uploads`: signed uploads
- :mod:`account`: the caller's keys and usage
- :mod:`webhooks`: deliveries and the signing secret
- :mod:`admin`: the admin API (not in the public document)
"""
