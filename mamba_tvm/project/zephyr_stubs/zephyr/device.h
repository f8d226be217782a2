/* Stub <zephyr/device.h> for mamba_tvm.project.zephyr_check (see ../README.md).
 * DEVICE_DT_GET(DT_CHOSEN(zephyr_console)) is an address constant, as in Zephyr;
 * DT_CHOSEN of any other property is an undeclared identifier. */
#ifndef MAMBA_TVM_STUB_ZEPHYR_DEVICE_H_
#define MAMBA_TVM_STUB_ZEPHYR_DEVICE_H_
#include <stdbool.h>

struct device {
  const char *name;
  const void *api;
};

#define DT_CHOSEN(prop) DT_STUB_CHOSEN_##prop
#define DT_STUB_CHOSEN_zephyr_console dt_stub_console
#define DEVICE_DT_GET(node_id) (&DEVICE_STUB_NAME(node_id))
#define DEVICE_STUB_NAME(node_id) DEVICE_STUB_CAT(node_id, _device)
#define DEVICE_STUB_CAT(a, b) a##b

extern const struct device dt_stub_console_device;

bool device_is_ready(const struct device *dev);

#endif
