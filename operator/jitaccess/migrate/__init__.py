"""Coming from Google's Just-In-Time Access 1.x: read its eligibility from IAM, write grants."""
