/**
 * Which tests need the machine's host services, and whether they must run.
 *
 * The QEMU guests (libvirtd on qemu:///system, scripts/setup-qemu.sh and scripts/build-test-guest.sh)
 * and the chaos suite (libvirtd's test driver behind its socket) need a prepared machine. In CI
 * (`CI=true`, or STRATUS_QEMU_TESTS=1 as .ci/run exports) they are REQUIRED: anything missing fails
 * them. Elsewhere the QEMU tests are opt-in (STRATUS_QEMU_TESTS=1) and the chaos suite runs when
 * libvirtd answers; otherwise each reports one todo saying how to turn it on, never a silent pass.
 */
import fs from 'node:fs';

export const HOST_TESTS_REQUIRED = process.env.STRATUS_QEMU_TESTS === '1' || process.env.CI === 'true';

/** The system libvirtd's socket (test+unix:///default and qemu:///system go through it). */
export const LIBVIRTD_SOCKET = '/var/run/libvirt/libvirt-sock';

export function libvirtdPresent(): boolean {
  return fs.existsSync(LIBVIRTD_SOCKET);
}
