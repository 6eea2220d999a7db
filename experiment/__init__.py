"""The A/B experiment: assignment, routing, exposure logging (issue 5)."""
