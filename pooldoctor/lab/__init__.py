"""Throwaway local systems (PostgreSQL cluster, demo app) used by the demo and the tests."""
