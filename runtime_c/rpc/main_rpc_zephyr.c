/* RPC firmware for a Zephyr board: serves the generated model to a host over the
 * console UART (zephyr,console: the ST-LINK virtual COM port on nucleo_h743zi, the
 * USB-UART bridge on UART0 on esp32s3_devkitc), with transport_zephyr_uart.c.
 * mamba_tvm.project.zephyr copies it to the generated app as src/main.c.
 *
 * The console UART is the RPC channel, so nothing else may write to it: the app's
 * prj.conf turns the console driver, printk, logging and the boot banner off, and
 * this file prints nothing (a failure shows as a host that gets no reply).
 *
 * Timing: k_cycle_get_32(), the kernel's hardware cycle counter, at
 * sys_clock_hw_cycles_per_sec() (reported in INFO as timer_hz, unit "cycles",
 * 1 per tick). These are CPU cycles on both boards: SysTick on the Cortex-M7 (480 MHz
 * on the H7), the CCOUNT register on the ESP32-S3's LX7 (240 MHz). The 32-bit counter
 * wraps (after ~9 s at 480 MHz, ~18 s at 240 MHz): one RUN must be shorter than that.
 *
 * The model side (buffers, sequence or streaming run, the profiling hooks that
 * -DTVMGEN_DEFAULT_PROFILE compiles in) is rpc_model.c, shared with the QEMU firmware. */
#include <stddef.h>
#include <stdint.h>

#include <zephyr/kernel.h>

#include "rpc_model.h"
#include "rpc_server.h"
#include "rpc_transport.h"

static struct rpc_server g_server;

/* The whole run and, with profiling, every kernel call are timed with it. */
uint32_t rpc_model_ticks(void) { return k_cycle_get_32(); }

int main(void) {
  struct rpc_transport io;
  struct rpc_target target;

  rpc_model_target(&target);
  target.before_run = NULL; /* the cycle counter needs no alignment (cf. main_rpc_mps2.c) */
  target.timer_hz = (uint32_t)sys_clock_hw_cycles_per_sec();
  target.units_per_tick = 1u;
  target.unit = RPC_UNIT_CYCLES;

  if (rpc_transport_zephyr_uart_init(&io) != 0) {
    return 1; /* the console UART is not ready: there is no channel to report on */
  }
  rpc_server_init(&g_server, &io, &target);
  rpc_server_run(&g_server); /* a UART never closes: serves until reset */
  return 0;
}
