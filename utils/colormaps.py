"""Matplotlib's 'inferno' colour map as 256 8-bit colours.

Source: the `_inferno_data` table of matplotlib's
`lib/matplotlib/_cm_listed.py`, which comes from BIDS/colormap's
`colormaps.py` (Nathaniel Smith and Stefan van der Walt, CC0). Each of its
256 RGB floats f in [0, 1] is stored as round(255 f), as upstream's
`np.round(cmap(x)[..., :3] * 255)` gives them, in hex, 3 bytes a colour.
"""

import numpy as np

_INFERNO_HEX = (
    '00000401000501010601010802010a02020c02020e030210040312040314050417060419'
    '07051b08051d09061f0a07220b07240c08260d08290e092b10092d110a30120a32140b34'
    '150b37160b39180c3c190c3e1b0c411c0c431e0c451f0c48210c4a230c4c240c4f260c51'
    '280b53290b552b0b572d0b592f0a5b310a5c320a5e340a5f3609613809623909633b0964'
    '3d09653e0966400a67420a68440a68450a69470b6a490b6a4a0c6b4c0c6b4d0d6c4f0d6c'
    '510e6c520e6d540f6d550f6d57106e59106e5a116e5c126e5d126e5f136e61136e62146e'
    '64156e65156e67166e69166e6a176e6c186e6d186e6f196e71196e721a6e741a6e751b6e'
    '771c6d781c6d7a1d6d7c1d6d7d1e6d7f1e6c801f6c82206c84206b85216b87216b88226a'
    '8a226a8c23698d23698f24699025689225689326679526679727669827669a28659b2964'
    '9d29649f2a63a02a63a22b62a32c61a52c60a62d60a82e5fa92e5eab2f5ead305dae305c'
    'b0315bb1325ab3325ab43359b63458b73557b93556ba3655bc3754bd3853bf3952c03a51'
    'c13a50c33b4fc43c4ec63d4dc73e4cc83f4bca404acb4149cc4248ce4347cf4446d04545'
    'd24644d34743d44842d54a41d74b3fd84c3ed94d3dda4e3cdb503bdd513ade5238df5337'
    'e05536e15635e25734e35933e45a31e55c30e65d2fe75e2ee8602de9612bea632aeb6429'
    'eb6628ec6726ed6925ee6a24ef6c23ef6e21f06f20f1711ff1731df2741cf3761bf37819'
    'f47918f57b17f57d15f67e14f68013f78212f78410f8850ff8870ef8890cf98b0bf98c0a'
    'f98e09fa9008fa9207fa9407fb9606fb9706fb9906fb9b06fb9d07fc9f07fca108fca309'
    'fca50afca60cfca80dfcaa0ffcac11fcae12fcb014fcb216fcb418fbb61afbb81dfbba1f'
    'fbbc21fbbe23fac026fac228fac42afac62df9c72ff9c932f9cb35f8cd37f8cf3af7d13d'
    'f7d340f6d543f6d746f5d949f5db4cf4dd4ff4df53f4e156f3e35af3e55df2e661f2e865'
    'f2ea69f1ec6df1ed71f1ef75f1f179f2f27df2f482f3f586f3f68af4f88ef5f992f6fa96'
    'f8fb9af9fc9dfafda1fcffa4')
INFERNO = np.frombuffer(bytes.fromhex(_INFERNO_HEX), np.uint8).reshape(256, 3)


def inferno(levels):
  """(levels, 3) uint8: the colours matplotlib's `inferno(linspace(0, 1,
  levels))` gives, dark (0) to bright (levels - 1).

  Like matplotlib, position x picks entry floor(256 x), 1.0 the last.
  """
  if levels < 2:
    raise ValueError(f'A colour scale needs at least 2 levels, got {levels}.')
  positions = np.linspace(0.0, 1.0, levels) * len(INFERNO)
  indices = np.minimum(positions.astype(np.int64), len(INFERNO) - 1)
  return INFERNO[indices]
