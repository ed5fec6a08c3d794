/* The device-side marker: where it lies, round trip, and what is not one. */
#include <errno.h>
#include <string.h>

#include "marker.h"
#include "unit.h"

int main(void)
{
	struct state_sb sb;
	struct marker m;
	uint8_t buf[MARKER_SIZE];

	/* the device's last whole 4 KiB, whatever H is */
	CHECK(marker_offset(64 << 20) == (64 << 20) - 4096);
	CHECK(marker_offset((64 << 20) + 512) == (64 << 20) - 4096);
	CHECK(marker_offset((64 << 20) + 4095) == (64 << 20) - 4096);
	CHECK(marker_offset(8192) == 4096);
	CHECK(marker_offset(8191) == 0);

	memset(&sb, 0, sizeof(sb));
	memset(sb.state_uuid, 0x3c, 16);
	CHECK(geometry_init(&sb.geo, 64 << 20, 16 << 20, 0, 1 << 20, 512) == 0);
	sb.created = 1764000000;
	strcpy(sb.luks_uuid, "0bd3e2a4-6a3b-4c1c-9d4e-0123456789ab");
	marker_encode(&sb, "/dev/disk/by-partlabel/luksipc-state", buf);
	CHECK(marker_decode(buf, &m) == 0);
	CHECK(memcmp(m.state_uuid, sb.state_uuid, 16) == 0);
	CHECK(m.device_size == 64 << 20 && m.header_size == 16 << 20 && m.created == sb.created);
	CHECK(strcmp(m.luks_uuid, sb.luks_uuid) == 0);
	CHECK(strcmp(m.state_path, "/dev/disk/by-partlabel/luksipc-state") == 0);
	/* any changed byte, zeros, or the magic alone is no marker */
	for (size_t i = 0; i < MARKER_SIZE; i += 97) {
		buf[i] ^= 1;
		CHECK(marker_decode(buf, &m) == -EINVAL);
		buf[i] ^= 1;
	}
	CHECK(marker_decode(buf, &m) == 0);
	memset(buf + 16, 0, MARKER_SIZE - 16);
	CHECK(marker_decode(buf, &m) == -EINVAL);
	memset(buf, 0, MARKER_SIZE);
	CHECK(marker_decode(buf, &m) == -EINVAL);
	UNIT_DONE("marker");
}
