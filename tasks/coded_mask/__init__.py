"""Coded-mask imaging (ECLAIRs): mask geometry and shadow model, sky images, positions, triggers."""
