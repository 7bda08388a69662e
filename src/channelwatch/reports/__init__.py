"""Outputs built from the figures: summary tables, quarterly statistics, the annual report draft."""
