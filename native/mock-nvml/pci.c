#include "pci.h"

#include <stdio.h>
#include <string.h>

/* Reads 1..max_digits hex digits; returns the position after them, or NULL. */
static const char *read_hex(const char *s, size_t max_digits, unsigned int *out) {
  unsigned int v = 0;
  size_t n = 0;
  for (;; s++, n++) {
    int d = *s >= '0' && *s <= '9'   ? *s - '0'
            : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10
            : *s >= 'A' && *s <= 'F' ? *s - 'A' + 10
                                     : -1;
    if (d < 0) break;
    if (n == max_digits) return NULL;
    v = v * 16 + (unsigned int)d;
  }
  if (n == 0) return NULL;
  *out = v;
  return s;
}

int mock_parse_pci_bus_id(const char *text, mock_pci_address *out) {
  mock_pci_address a;
  const char *s = read_hex(text, 8, &a.domain);
  if (s == NULL || *s++ != ':') return -1;
  s = read_hex(s, 2, &a.bus);
  if (s == NULL || *s++ != ':') return -1;
  s = read_hex(s, 2, &a.device);
  if (s == NULL || *s++ != '.') return -1;
  s = read_hex(s, 1, &a.function);
  if (s == NULL || *s != '\0' || a.device > 0x1F || a.function > 7) return -1;
  *out = a;
  return 0;
}

void mock_format_pci_info(const mock_pci_address *address, unsigned int device_id, unsigned int subsystem_id,
                          nvmlPciInfo_t *info) {
  memset(info, 0, sizeof *info);
  /* NVML_DEVICE_PCI_BUS_ID_FMT and its legacy 16-byte form; the legacy domain has 4 digits */
  snprintf(info->busId, sizeof info->busId, "%08X:%02X:%02X.%X", address->domain, address->bus & 0xFFu,
           address->device & 0x1Fu, address->function & 0x7u);
  snprintf(info->busIdLegacy, sizeof info->busIdLegacy, "%04X:%02X:%02X.%X", address->domain & 0xFFFFu,
           address->bus & 0xFFu, address->device & 0x1Fu, address->function & 0x7u);
  info->domain = address->domain;
  info->bus = address->bus;
  info->device = address->device;
  info->pciDeviceId = device_id;
  info->pciSubSystemId = subsystem_id;
}
