"""Importing this module makes ``.dcae`` a Pillow format (``import dcae.pillow_plugin``), as
pillow-avif-plugin and pillow-jxl-plugin do; see :mod:`dcae.pillow`."""

from .pillow import register

register()
