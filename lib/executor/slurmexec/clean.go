package slurmexec

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
)

// Owns reports whether worker is one of this executor's slots.
func (e *Executor) Owns(worker string) bool { return strings.HasPrefix(worker, e.cfg.Name+"/") }

// queued is one job of Slurm's queue.
type queued struct {
	id, name, comment, nodes string
}

// queue lists this user's jobs in Slurm's queue (in the partition, when
// one is set).
func (e *Executor) queue(ctx context.Context) ([]queued, error) {
	args := []string{"--noheader", "--user=" + strconv.Itoa(os.Getuid()), "--format=%i|%j|%k|%N"}
	if e.cfg.Partition != "" {
		args = append(args, "--partition="+e.cfg.Partition)
	}
	var out, errb bytes.Buffer
	cmd := e.command(ctx, "squeue", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("squeue: %v: %s", err, strings.TrimSpace(errb.String()))
	}
	var q []queued
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		f := strings.SplitN(strings.TrimSpace(sc.Text()), "|", 4)
		if len(f) == 4 {
			q = append(q, queued{id: f[0], name: f[1], comment: f[2], nodes: f[3]})
		}
	}
	return q, sc.Err()
}

// nodes expands a Slurm host list (node[1-3],gpu1) into node names.
func (e *Executor) nodes(ctx context.Context, list string) ([]string, error) {
	var out bytes.Buffer
	cmd := e.command(ctx, "scontrol", "show", "hostnames", list)
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("scontrol show hostnames %s: %w", list, err)
	}
	return strings.Fields(out.String()), nil
}

// partitionNodes lists the nodes of the partition (every node when none
// is set).
func (e *Executor) partitionNodes(ctx context.Context) ([]string, error) {
	args := []string{"--noheader", "--Node", "--format=%N"}
	if e.cfg.Partition != "" {
		args = append(args, "--partition="+e.cfg.Partition)
	}
	var out bytes.Buffer
	cmd := e.command(ctx, "sinfo", args...)
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("sinfo: %w", err)
	}
	var ns []string
	for _, n := range strings.Fields(out.String()) {
		if !slices.Contains(ns, n) {
			ns = append(ns, n)
		}
	}
	return ns, nil
}

// CleanStale scancels the jobs of a scheduler of this run that died (they
// carry its comment), waits until Slurm no longer lists them, and removes
// the job directories of the stale jobs on their nodes.
func (e *Executor) CleanStale(ctx context.Context, jobs []executor.StaleJob) ([]executor.Cleaned, error) {
	mine := executor.Owned(jobs, e.Owns)
	if len(mine) == 0 {
		return nil, nil
	}
	q, err := e.queue(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: clean up stale jobs: %w", e.cfg.Name, err)
	}
	// Every job of ours in the queue is stale: CleanStale runs before
	// this run starts any.
	var nodes []string
	listed := map[string]bool{}
	for _, j := range q {
		if j.comment != e.comment {
			continue
		}
		listed[strings.TrimSuffix(j.name, "-clean")] = true
		if err := e.cancel(ctx, j.name, j.id); err != nil {
			return nil, fmt.Errorf("%s: cancel stale job %s (%s): %w", e.cfg.Name, j.id, j.name, err)
		}
		if j.nodes != "" && j.nodes != "(null)" {
			ns, err := e.nodes(ctx, j.nodes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", e.cfg.Name, err)
			}
			for _, n := range ns {
				if !slices.Contains(nodes, n) {
					nodes = append(nodes, n)
				}
			}
		}
	}
	if e.cfg.Settings.KeepWorkdir {
		return nil, nil
	}
	for _, j := range mine {
		if !listed[j.PkgName] {
			// Slurm forgot where it ran: look on every node.
			if nodes, err = e.partitionNodes(ctx); err != nil {
				return nil, fmt.Errorf("%s: %w", e.cfg.Name, err)
			}
			break
		}
	}
	var script strings.Builder
	for _, j := range mine {
		script.WriteString(cleanScript(e.cfg.Settings.WorkRoot, j.PkgName, j.Started.Add(-2*time.Second).Unix()))
		script.WriteString("\n")
	}
	var out []executor.Cleaned
	var errs []error
	for _, n := range nodes {
		found, err := e.cleanNode(ctx, n, mine, script.String())
		out = append(out, found...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// cleanNode runs script (cleanScript for each stale job) in one step on
// node and reads what it removed.
func (e *Executor) cleanNode(ctx context.Context, node string, jobs []executor.StaleJob, script string) ([]executor.Cleaned, error) {
	ctx, stop := context.WithTimeout(ctx, 5*time.Minute)
	defer stop()
	name := "pkgbulk-clean"
	args := append(e.srunArgs(name, 1), "--nodelist="+node, "/bin/sh", "-c", script)
	var buf, errb bytes.Buffer
	cmd := e.command(ctx, "srun", args...)
	cmd.Stdout, cmd.Stderr = &buf, &errb
	err := cmd.Run()
	e.waitGone(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("%s: clean up on %s: %v: %s", e.cfg.Name, node, err, strings.TrimSpace(errb.String()))
	}
	var out []executor.Cleaned
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		verb, path, _ := strings.Cut(sc.Text(), " ")
		cl := executor.Cleaned{Path: node + ":" + path, PkgName: owner(path, jobs)}
		if verb != "removed" {
			cl.Err = errors.New("could not remove it")
		}
		out = append(out, cl)
	}
	return out, nil
}

// waitGone waits (up to a minute) until Slurm no longer lists a job of
// this run named name: a step's job lingers as COMPLETING after srun
// returns.
func (e *Executor) waitGone(ctx context.Context, name string) {
	ctx, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	for {
		q, err := e.queue(ctx)
		if err != nil || !slices.ContainsFunc(q, func(j queued) bool { return j.name == name && j.comment == e.comment }) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// owner is the stale job whose directory path is (<root>/<PKGNAME>.<x>).
func owner(path string, jobs []executor.StaleJob) string {
	base := path[strings.LastIndexByte(path, '/')+1:]
	for _, j := range jobs {
		if rest, ok := strings.CutPrefix(base, j.PkgName+"."); ok && !strings.Contains(rest, ".") {
			return j.PkgName
		}
	}
	return ""
}
