"""tools.contact_sheet's layout."""

from PIL import Image

from tools import contact_sheet


def test_the_widest_row_sets_the_width():
  """T = 6 gives five input dates above a bottom row of four panels."""
  side = 8
  panel = lambda colour: ('x', Image.new('RGB', (side, side), colour))
  dates = [panel('red')] * 5
  canvas = contact_sheet.sheet([dates, dates], [panel('blue')] * 4, side)
  step = side + contact_sheet.GAP
  assert canvas.size[0] == 5 * step + contact_sheet.GAP
  x = contact_sheet.GAP + 4 * step + side // 2
  y = contact_sheet.GAP + contact_sheet.LABEL_HEIGHT + side // 2
  assert canvas.getpixel((x, y)) == (255, 0, 0)   # the fifth date is drawn
