"""Packaged instrument definitions (ECLAIRs, GRM, MXT, COLIBRI cameras) as YAML data files."""
