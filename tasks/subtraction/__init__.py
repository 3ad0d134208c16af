"""Image subtraction (Alard-Lupton kernel fitting) and transient candidate detection."""
