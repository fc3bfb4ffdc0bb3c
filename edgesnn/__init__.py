"""edgesnn: can this spiking network learn on this device?

A fixed-point, cycle-counting simulator of on-chip spiking-network learning
(S-TLLR, TESS, learned delays) reported next to a float reference.
"""

__version__ = "0.1.0"
