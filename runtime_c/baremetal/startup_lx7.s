# Startup for QEMU's Xtensa sim with the de233_fpu LX7 core (qemu-system-xtensa -M sim
# -cpu de233_fpu): reset vector, exception vectors with the window overflow/underflow
# handlers the windowed ABI needs, the AllocaCause handler, FPU enable, then board_start().
#
# Why assembly: none of this can be C (there is no stack and no register window yet).
# Assembled with llvm-mc-22 -triple=xtensa -mattr=<the board's target features>. llvm-mc 22
# does not know `simcall`, and this file needs none: faults go to board_fault() in C.
#
# Any exception other than a window spill or AllocaCause resets the register-window state
# and calls board_fault(exccause, epc1, excvaddr, vector offset), which prints a FAULT line
# and exits: a bad instruction or address ends the run at once, with where it happened.

	.section .ResetVector.text, "ax"
	.global	_ResetVector
_ResetVector:				# 0xFE000000 in the sim's ROM; L32R reaches only backwards
	j	.Lreset_go
	.p2align 2
.Lreset_lit:
	.long	_start
.Lreset_go:
	l32r	a2, .Lreset_lit
	jx	a2

# ---- the vector table (VECBASE); offsets are the core's XCHAL_*_VECOFS ---------------------
	.section .vectors.text, "ax"
	.p2align 10
	.global	_vector_table
_vector_table:
	.org	_vector_table + 0x000	# WindowOverflow4: spill a0-a3 of the frame being reused
	s32e	a0, a5, -16
	s32e	a1, a5, -12
	s32e	a2, a5, -8
	s32e	a3, a5, -4
	rfwo
	.org	_vector_table + 0x040	# WindowUnderflow4
.Lunderflow4:
	l32e	a0, a5, -16
	l32e	a1, a5, -12
	l32e	a2, a5, -8
	l32e	a3, a5, -4
	rfwu
	.org	_vector_table + 0x080	# WindowOverflow8
	s32e	a0, a9, -16
	l32e	a0, a1, -12
	s32e	a1, a9, -12
	s32e	a2, a9, -8
	s32e	a3, a9, -4
	s32e	a4, a0, -32
	s32e	a5, a0, -28
	s32e	a6, a0, -24
	s32e	a7, a0, -20
	rfwo
	.org	_vector_table + 0x0C0	# WindowUnderflow8
.Lunderflow8:
	l32e	a1, a9, -12
	l32e	a0, a9, -16
	l32e	a7, a1, -12
	l32e	a2, a9, -8
	l32e	a4, a7, -32
	l32e	a3, a9, -4
	l32e	a5, a7, -28
	l32e	a6, a7, -24
	l32e	a7, a7, -20
	rfwu
	.org	_vector_table + 0x100	# WindowOverflow12
	s32e	a0, a13, -16
	l32e	a0, a1, -12
	s32e	a1, a13, -12
	s32e	a2, a13, -8
	s32e	a3, a13, -4
	s32e	a4, a0, -48
	s32e	a5, a0, -44
	s32e	a6, a0, -40
	s32e	a7, a0, -36
	s32e	a8, a0, -32
	s32e	a9, a0, -28
	s32e	a10, a0, -24
	s32e	a11, a0, -20
	rfwo
	.org	_vector_table + 0x140	# WindowUnderflow12
.Lunderflow12:
	l32e	a1, a13, -12
	l32e	a0, a13, -16
	l32e	a11, a1, -12
	l32e	a2, a13, -8
	l32e	a4, a11, -48
	l32e	a8, a11, -32
	l32e	a3, a13, -4
	l32e	a5, a11, -44
	l32e	a6, a11, -40
	l32e	a7, a11, -36
	l32e	a9, a11, -28
	l32e	a10, a11, -24
	l32e	a11, a11, -20
	rfwu
# Level 2..5 interrupts, debug (ICOUNT overflow lands here), NMI, kernel exception: none
# is expected (no interrupt is enabled). a13 carries the vector offset to board_fault.
	.org	_vector_table + 0x180
	movi	a13, 0x180
	j	.Lfatal
	.org	_vector_table + 0x1C0
	movi	a13, 0x1C0
	j	.Lfatal
	.org	_vector_table + 0x200
	movi	a13, 0x200
	j	.Lfatal
	.org	_vector_table + 0x240
	movi	a13, 0x240
	j	.Lfatal
	.org	_vector_table + 0x280
	movi	a13, 0x280
	j	.Lfatal
	.org	_vector_table + 0x2C0
	movi	a13, 0x2C0
	j	.Lfatal
	.org	_vector_table + 0x300
	movi	a13, 0x300
	j	.Lfatal
	.org	_vector_table + 0x340	# UserException: AllocaCause is handled, the rest is fatal
	wsr	a0, excsave1
	rsr	a0, exccause
	beqi	a0, 5, .Lalloca
	movi	a13, 0x340
	j	.Lfatal
.Lalloca:
	j	.Lalloca_exc
	.org	_vector_table + 0x3C0	# DoubleException
	movi	a13, 0x3C0
	j	.Lfatal
	.org	_vector_table + 0x400

	.text
# AllocaCause: LLVM moves SP with MOVSP around calls that pass stack arguments, and MOVSP
# traps when the caller's a0-a3 are spilled. Reload them through the matching underflow
# handler, whose RFWU returns to the MOVSP, which then runs again. PS.OWB is set to the
# WINDOWBASE of the trap so that RFWU restores it (the standard Xtensa technique).
	.p2align 2
.Lalloca_exc:
	rsr	a0, windowbase
	rotw	-1			# a4 = WINDOWBASE at the trap; a0-a3 are scratch
	rsr	a2, ps
	extui	a3, a2, 8, 4		# PS.OWB
	xor	a3, a3, a4
	rsr	a4, excsave1		# the trapping frame's a0: return address + call size
	slli	a3, a3, 8
	xor	a2, a2, a3		# PS.OWB := WINDOWBASE at the trap
	wsr	a2, ps
	rsync
	bbsi	a4, 31, 1f
	j	.Lunderflow4		# the caller used CALL4
1:	rotw	-1			# the original a0 is now a8
	bbsi	a8, 30, 2f
	j	.Lunderflow8		# CALL8
2:	rotw	-1
	j	.Lunderflow12		# CALL12

	.p2align 2
.Llit_fault:
	.long	board_fault
.Llit_fault_stack:
	.long	_fault_stack + 512
.Llit_ps:
	.long	0x00040020		# PS: WOE (bit 18), UM; EXCM 0, INTLEVEL 0, CALLINC 0
.Llit_vecbase:
	.long	_vector_table
.Llit_stack:
	.long	__StackTop
.Llit_start:
	.long	board_start

# Fatal exception: a fresh window state (only the current window valid), its own stack,
# exceptions enabled again, then board_fault(exccause, epc1, excvaddr, vector) in C.
.Lfatal:
	rsr	a10, exccause
	rsr	a11, epc1
	rsr	a12, excvaddr
	rsr	a2, windowbase
	movi	a3, 1
	ssl	a2
	sll	a3, a3
	wsr	a3, windowstart
	rsync
	l32r	a1, .Llit_fault_stack
	l32r	a2, .Llit_ps
	wsr	a2, ps
	rsync
	l32r	a8, .Llit_fault
	callx8	a8			# board_fault does not return
3:	j	3b

	.global	_start
_start:
	l32r	a2, .Llit_vecbase
	wsr	a2, vecbase
	movi	a2, 0
	wsr	a2, intenable
	wsr	a2, windowbase
	rsync
	movi	a2, 1
	wsr	a2, windowstart
	rsync
	l32r	a2, .Llit_ps
	wsr	a2, ps
	rsync
	movi	a2, 1			# CPENABLE bit 0: the FPU (coprocessor 0); FP instructions trap without it
	wsr	a2, cpenable
	rsync
	movi	a2, 0
	wur	a2, fcr			# round to nearest, no FP exceptions
	wur	a2, fsr
	l32r	a1, .Llit_stack
	movi	a0, 0			# ends the call chain
	l32r	a8, .Llit_start
	callx8	a8			# board_start does not return
4:	j	4b

	.bss
	.p2align 4
_fault_stack:
	.space	512

	.section .note.GNU-stack, "", @progbits
