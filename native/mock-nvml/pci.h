/* PCI bus ids: parsing the forms people write, formatting the forms NVML returns. */
#ifndef MOCK_NVML_PCI_H
#define MOCK_NVML_PCI_H

#include "nvml_abi.h"

typedef struct {
  unsigned int domain, bus, device, function;
} mock_pci_address;

/* Accepts "00000000:07:00.0" and "0000:07:00.0" (any case, 1-8 domain digits). 0 on success. */
int mock_parse_pci_bus_id(const char *text, mock_pci_address *out);

/* Fills every field of `info`, the bus ids in NVML's upper-case formats. */
void mock_format_pci_info(const mock_pci_address *address, unsigned int device_id, unsigned int subsystem_id,
                          nvmlPciInfo_t *info);

#endif
