"""The custom resources as typed, validated Python objects.

Pure: nothing here imports kopf, kubernetes or google. Parsing never raises on user input; it
collects `FieldError`s that name the field, so admission, status messages and tests all speak
the same language (`spec.duration: 3h exceeds the grant's maxDuration 2h`).
"""
