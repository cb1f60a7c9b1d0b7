"""Placement and cluster configs."""
