"""Every rule of jitaccess, as pure functions of data.

Eligibility (may this requester activate these roles of that grant?), identity mapping, and the
lifecycle state machine. Pure: nothing here imports kopf, kubernetes or google. The admission
webhooks and the reconciler call the same functions, so a rule is never written twice.
"""
