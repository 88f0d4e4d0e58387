"""Classification: douchettes are found by configuration first, then by name or vendor; keyboards are left alone."""

from __future__ import annotations

from terminal.scanner.devices import InputNode, classify, group_nodes, matches


def node(path: str = "/dev/input/event3", name: str = "Generic USB Keyboard", vendor: int = 0x1A2C,
         product: int = 0x2124, phys: str = "usb-0000:00:14.0-2/input0", links: tuple[str, ...] = (),
         codes: bool = True) -> InputNode:  # fmt: skip
    return InputNode(path=path, name=name, phys=phys, vendor=vendor, product=product, links=links,
                     has_keys=True, can_type_codes=codes)  # fmt: skip


def test_a_plain_keyboard_is_never_a_douchette_unless_configured() -> None:
    kbd = node()
    assert not classify([kbd]).douchette
    assert classify([kbd], selectors=["1a2c:2124"]).douchette
    assert classify([kbd], selectors=["generic usb"]).douchette
    assert classify([kbd], selectors=["/dev/input/event3"]).douchette


def test_heuristics_name_and_vendor() -> None:
    assert not classify([node(name="Honeywell Imaging & Mobility 1900")]).douchette  # brand alone: not enough
    assert classify([node(name="Symbol Bar Code Scanner")]).why == "name says 'bar code'"
    assert classify([node(name="USB Barcode Reader")]).douchette
    assert classify([node(name="Honeywell 1900", vendor=0x0C2E)]).why == "scanner vendor Honeywell (Metrologic)"
    assert not classify([node(name="Honeywell 1900", vendor=0x0C2E)], heuristics=False).douchette


def test_ignore_beats_heuristics_and_devices_that_cannot_type_codes_are_never_douchettes() -> None:
    scanner = node(name="USB Barcode Scanner")
    assert not classify([scanner], ignore=["barcode"]).douchette
    mouse = node(name="Barcode Scanner Mouse", codes=False)
    assert not classify([mouse], selectors=["barcode"]).douchette


def test_by_id_links_select_and_name_the_device() -> None:
    link = "/dev/input/by-id/usb-Honeywell_Scanner_ABC123-event-kbd"
    n = node(links=(link, "/dev/input/by-path/pci-0000:00:14.0-usb-0:2:1.0-event-kbd"))
    assert n.device_id == "usb-Honeywell_Scanner_ABC123"
    assert matches(link, n)
    assert matches("usb-Honeywell_Scanner_ABC123-event-kbd", n)
    assert node().device_id == "1a2c:2124@usb-0000:00:14.0-2"


def test_all_nodes_of_one_usb_device_are_grouped() -> None:
    kbd = node("/dev/input/event5", "ACME Scanner", phys="usb-0000:00:14.0-3/input0")
    consumer = node("/dev/input/event6", "ACME Scanner Consumer Control", phys="usb-0000:00:14.0-3/input1",
                    codes=False)  # fmt: skip
    other = node("/dev/input/event7", "ACME Scanner", phys="usb-0000:00:14.0-4/input0")
    groups = group_nodes([kbd, consumer, other])
    assert sorted(len(g) for g in groups.values()) == [1, 2]
    cls = classify(groups["usb-0000:00:14.0-3"])
    assert cls.douchette and {n.path for n in cls.nodes} == {"/dev/input/event5", "/dev/input/event6"}
