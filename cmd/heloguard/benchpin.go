package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cpuSplit divides the CPUs this process may use between the bench's client
// (the first quarter, at least one) and the milters it starts (the rest), so
// that a milter's sessions/s are its own and not shared with the client's
// system calls: on 2 CPUs, sharing them cost the do-nothing milter a quarter
// to a third of its sessions/s (1,100-1,260 shared, 1,700 pinned, 20 header
// fields), and doubled its p99.
type cpuSplit struct {
	all, client, milters unix.CPUSet
}

// newCPUSplit returns nil when there are fewer than two CPUs to split.
func newCPUSplit() (*cpuSplit, error) {
	var s cpuSplit
	if err := unix.SchedGetaffinity(0, &s.all); err != nil {
		return nil, err
	}
	var cpus []int
	for i := range 1024 {
		if s.all.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) < 2 {
		return nil, nil
	}
	n := max(1, len(cpus)/4)
	for i, c := range cpus {
		if i < n {
			s.client.Set(c)
		} else {
			s.milters.Set(c)
		}
	}
	return &s, nil
}

// startPinned runs start (which starts a process) on a thread whose
// affinity is the milters' CPUs: the child inherits it, and its Go runtime
// sizes GOMAXPROCS by it. The thread is given back with its affinity as it
// was: it must outlive the child, whose parent-death signal is tied to it.
func (s *cpuSplit) startPinned(start func() error) error {
	if s == nil {
		return start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.SchedSetaffinity(0, &s.milters); err != nil {
		return err
	}
	err := start()
	if err2 := unix.SchedSetaffinity(0, &s.all); err == nil {
		err = err2
	}
	return err
}

// pinSelf moves every thread of this process to the client's CPUs (threads
// made later inherit it) and sets GOMAXPROCS to their number.
func (s *cpuSplit) pinSelf() error {
	if s == nil {
		return nil
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &s.client); err != nil && err != unix.ESRCH {
			return fmt.Errorf("pinning thread %d: %v", tid, err)
		}
	}
	runtime.GOMAXPROCS(s.client.Count())
	return nil
}

// String says which CPUs go where: "client on CPU 0, milters on CPU 1".
func (s *cpuSplit) String() string {
	if s == nil {
		return "client and milters share the CPUs"
	}
	return "client on CPU " + cpuList(&s.client) + ", milters on CPU " + cpuList(&s.milters)
}

func cpuList(set *unix.CPUSet) string {
	var l []string
	for i := range 1024 {
		if set.IsSet(i) {
			l = append(l, strconv.Itoa(i))
		}
	}
	return strings.Join(l, ",")
}
