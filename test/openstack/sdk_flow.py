"""The core flow through openstacksdk's proxies against Stratus (issue 10), asserting typed attributes.

Run by test/e2e/openstack-cli.test.ts with the pinned SDK (.venv-osc) and a throwaway clouds.yaml:
  OS_CLIENT_CONFIG_FILE=... OS_CLOUD=stratus SDK_FLOW_IMAGE_FILE=disk.img .venv-osc/bin/python test/openstack/sdk_flow.py
Optional: SDK_FLOW_FLAVOR (m1.tiny), SDK_FLOW_CIDR (10.79.0.0/24), SDK_FLOW_NAME (sdk-flow).

Prints one line per step; exits 0 with "sdk_flow: ok" last, or 1 with "sdk_flow: FAILED at <step>: <what>"
(whatever it made is deleted either way).
"""
import hashlib
import ipaddress
import os
import sys
import time
import traceback

import openstack
from openstack import exceptions

NAME = os.environ.get("SDK_FLOW_NAME", "sdk-flow")
FLAVOR = os.environ.get("SDK_FLOW_FLAVOR", "m1.tiny")
CIDR = os.environ.get("SDK_FLOW_CIDR", "10.79.0.0/24")
IMAGE_FILE = os.environ["SDK_FLOW_IMAGE_FILE"]


class Mismatch(Exception):
    pass


step_name = "start"


def step(name):
    global step_name
    step_name = name
    print(f"sdk_flow: {name}", flush=True)


def expect(what, actual, wanted):
    if actual != wanted:
        raise Mismatch(f"{what}: expected {wanted!r}, got {actual!r}")


def expect_true(what, cond, detail=""):
    if not cond:
        raise Mismatch(f"{what}{': ' + detail if detail else ''}")


def main(conn, made):
    step("auth")
    token = conn.session.get_token()
    expect_true("a token", isinstance(token, str) and token.startswith("st_"), repr(token))
    project_id = conn.current_project_id
    expect_true("a project id", bool(project_id))

    step("image: create + upload")
    with open(IMAGE_FILE, "rb") as f:
        data = f.read()
    image = conn.image.create_image(NAME, filename=IMAGE_FILE, disk_format="raw", container_format="bare", wait=True, timeout=60)
    made["image"] = image
    image = conn.image.get_image(image.id)
    expect("image.status", image.status, "active")
    expect("image.size", image.size, len(data))
    expect("image.checksum", image.checksum, hashlib.md5(data).hexdigest())
    expect("image.disk_format", image.disk_format, "raw")
    expect("image.name", image.name, NAME)
    expect_true("image in image.images()", image.id in [i.id for i in conn.image.images()])

    step("network: create_network + create_subnet")
    net = conn.network.create_network(name=NAME)
    made["network"] = net
    expect("network.name", net.name, NAME)
    expect("network.is_admin_state_up", net.is_admin_state_up, True)
    subnet = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr=CIDR, name=NAME)
    made["subnet"] = subnet
    expect("subnet.cidr", subnet.cidr, CIDR)
    expect("subnet.network_id", subnet.network_id, net.id)
    expect("subnet.ip_version", subnet.ip_version, 4)
    expect("subnet.gateway_ip", subnet.gateway_ip, str(next(ipaddress.ip_network(CIDR).hosts())))
    expect("network.subnet_ids", conn.network.get_network(net.id).subnet_ids, [subnet.id])

    step("volume: create_volume, wait for available")
    volume = conn.block_storage.create_volume(size=1, name=NAME)
    made["volume"] = volume
    expect("volume.size", volume.size, 1)
    volume = conn.block_storage.wait_for_status(volume, status="available", failures=["error"], interval=1, wait=60)
    expect("volume.status", volume.status, "available")
    expect("volume.attachments", volume.attachments, [])
    expect("volume.project_id", volume.project_id, project_id)

    step("server: create_server + wait_for_server")
    flavor = conn.compute.find_flavor(FLAVOR, ignore_missing=False)
    server = conn.compute.create_server(name=NAME, flavor_id=flavor.id, image_id=image.id, networks=[{"uuid": net.id}])
    made["server"] = server
    server = conn.compute.wait_for_server(server, status="ACTIVE", failures=["ERROR"], interval=1, wait=180)
    expect("server.status", server.status, "ACTIVE")
    expect("server.name", server.name, NAME)
    expect("server.image.id", server.image.id, image.id)
    expect("server.flavor.id (2.1 shape)", server.flavor.id, flavor.id)
    expect("server.power_state", server.power_state, 1)
    addresses = [a["addr"] for a in server.addresses.get(NAME, [])]
    expect_true(f"server.addresses[{NAME}] in {CIDR}", len(addresses) == 1 and ipaddress.ip_address(addresses[0]) in ipaddress.ip_network(CIDR), repr(server.addresses))
    expect_true("server in compute.servers()", server.id in [s.id for s in conn.compute.servers()])

    step("attach: create_volume_attachment, volume in-use")
    attachment = conn.compute.create_volume_attachment(server, volume=volume)
    expect("attachment.volume_id", attachment.volume_id, volume.id)
    expect("attachment.server_id", attachment.server_id, server.id)
    expect("attachment.device", attachment.device, "/dev/vdb")
    volume = conn.block_storage.wait_for_status(volume, status="in-use", failures=["error"], interval=1, wait=60)
    expect("volume.attachments[].server_id", [a["server_id"] for a in volume.attachments], [server.id])
    expect("volume.attachments[].device", [a["device"] for a in volume.attachments], ["/dev/vdb"])
    expect("server volume_attachments", [a.volume_id for a in conn.compute.volume_attachments(server)], [volume.id])

    step("detach: delete_volume_attachment, volume available")
    conn.compute.delete_volume_attachment(server, volume)
    volume = conn.block_storage.wait_for_status(volume, status="available", failures=["error"], interval=1, wait=60)
    expect("volume.attachments after detach", volume.attachments, [])

    step("stop_server → SHUTOFF, start_server → ACTIVE")
    conn.compute.stop_server(server)
    server = conn.compute.wait_for_server(server, status="SHUTOFF", failures=["ERROR"], interval=1, wait=120)
    expect("server.status after stop", server.status, "SHUTOFF")
    expect("server.power_state after stop", server.power_state, 4)
    conn.compute.start_server(server)
    server = conn.compute.wait_for_server(server, status="ACTIVE", failures=["ERROR"], interval=1, wait=120)
    expect("server.status after start", server.status, "ACTIVE")

    step("get_server_console_output")
    out = conn.compute.get_server_console_output(server)
    expect_true("console output is {'output': str}", isinstance(out, dict) and isinstance(out.get("output"), str), repr(out)[:200])

    step("delete_server + wait_for_delete")
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, interval=1, wait=120)
    made.pop("server")
    expect("find_server after delete", conn.compute.find_server(NAME), None)


def cleanup(conn, made):
    """Deletes what the flow made, newest first; reports (does not hide) what could not be deleted."""
    problems = []

    def attempt(what, fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - cleanup reports every failure
            problems.append(f"{what}: {e}")

    if "server" in made:
        attempt("server", lambda: (conn.compute.delete_server(made["server"], ignore_missing=True), conn.compute.wait_for_delete(made["server"], interval=1, wait=120)))
    if "volume" in made:
        def delete_volume():
            vol = conn.block_storage.get_volume(made["volume"].id)
            if vol.status in ("in-use", "attaching", "detaching", "reserved", "creating"):
                conn.block_storage.wait_for_status(vol, status="available", failures=["error"], interval=1, wait=60)
            conn.block_storage.delete_volume(vol, ignore_missing=True)
            conn.block_storage.wait_for_delete(vol, interval=1, wait=60)
        attempt("volume", delete_volume)
    if "subnet" in made:
        attempt("subnet", lambda: conn.network.delete_subnet(made["subnet"], ignore_missing=True))
    if "network" in made:
        attempt("network", lambda: conn.network.delete_network(made["network"], ignore_missing=True))
    if "image" in made:
        attempt("image", lambda: conn.image.delete_image(made["image"], ignore_missing=True))
    return problems


if __name__ == "__main__":
    started = time.monotonic()
    conn = openstack.connect(cloud=os.environ.get("OS_CLOUD", "stratus"))
    made = {}
    failure = None
    try:
        main(conn, made)
    except Mismatch as e:
        failure = str(e)
    except exceptions.SDKException as e:
        failure = f"{type(e).__name__}: {e}"
    except Exception:  # noqa: BLE001 - anything else is a failure with its stack
        failure = traceback.format_exc()
    problems = cleanup(conn, made)
    if failure:
        print(f"sdk_flow: FAILED at {step_name}: {failure}", file=sys.stderr)
    for p in problems:
        print(f"sdk_flow: cleanup failed: {p}", file=sys.stderr)
    if failure or problems:
        sys.exit(1)
    print(f"sdk_flow: ok ({time.monotonic() - started:.1f} s)")
