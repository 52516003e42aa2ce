"""The Live page's invitation: the participant page's link, and a QR code that a phone reads back as that link."""

from __future__ import annotations

import io

import zxingcpp
from PIL import Image

from dashboard.invite import only_this_machine, page_link, qr_png
from fcfs.settings import Settings


def test_the_qr_code_encodes_the_link() -> None:
    for link in ("http://192.168.1.20:8000/c/7", "https://event.example.com/c/9007199254740991"):
        found = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr_png(link))))
        assert [(code.format, code.text) for code in found] == [(zxingcpp.BarcodeFormat.QRCode, link)]


def test_the_link_is_the_public_address_and_a_loopback_one_is_flagged() -> None:
    ops_plane = Settings(api_base_url="http://127.0.0.1:8001", api_port=8000, public_url="")
    assert page_link(ops_plane, 7) == "http://127.0.0.1:8000/c/7"  # the public door, not the dashboard's API
    assert page_link(Settings(public_url="https://door.example.com/"), 7) == "https://door.example.com/c/7"
    assert only_this_machine("http://127.0.0.1:8000/c/7") and only_this_machine("http://localhost/c/7")
    assert only_this_machine("http://[::1]:8000/c/7")
    assert not only_this_machine("http://192.168.1.20:8000/c/7") and not only_this_machine(
        "https://door.example.com/c/7"
    )
