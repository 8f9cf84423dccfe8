//! Orders the steps of a workflow so that every step comes after the steps it needs, or finds
//! the cycles that make this impossible.
//!
//! It works on plain indices (a step's position in the file), so ties are broken by file order
//! and the result is the same on every run. It knows nothing about step names, spans or
//! messages: the caller turns the index lists into diagnostics.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};

/// Orders nodes `0..needs.len()` so that each node comes after every node in `needs[node]`.
///
/// Among the nodes that are ready at the same time, the smallest index goes first. When some
/// nodes cannot be ordered, returns one cycle per group of mutually dependent nodes instead:
/// each cycle starts and ends at the group's smallest index, every node needs the one after
/// it, and it is a shortest such path. Nodes that merely depend on a cycle are not reported,
/// since fixing the cycle fixes them. Cycles come sorted by their first node.
pub(crate) fn topological_order(needs: &[Vec<usize>]) -> Result<Vec<usize>, Vec<Vec<usize>>> {
    let count = needs.len();
    // Deduplicated, sorted edges make both the ordering and the cycle search deterministic.
    let needs: Vec<BTreeSet<usize>> = needs.iter().map(|n| n.iter().copied().collect()).collect();
    let mut dependents = vec![Vec::new(); count];
    for (node, node_needs) in needs.iter().enumerate() {
        for &needed in node_needs {
            dependents[needed].push(node);
        }
    }

    let mut waiting_on: Vec<usize> = needs.iter().map(BTreeSet::len).collect();
    let mut ready: BinaryHeap<Reverse<usize>> = (0..count)
        .filter(|&node| waiting_on[node] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(count);
    while let Some(Reverse(node)) = ready.pop() {
        order.push(node);
        for &dependent in &dependents[node] {
            waiting_on[dependent] -= 1;
            if waiting_on[dependent] == 0 {
                ready.push(Reverse(dependent));
            }
        }
    }
    if order.len() == count {
        return Ok(order);
    }

    let stuck: Vec<usize> = (0..count).filter(|&node| waiting_on[node] > 0).collect();
    Err(cycles(&needs, &stuck))
}

/// One shortest cycle per strongly connected group among the `stuck` nodes.
///
/// Workflows have tens of steps, so computing full reachability per node is cheap and much
/// simpler to get right than Tarjan's algorithm.
fn cycles(needs: &[BTreeSet<usize>], stuck: &[usize]) -> Vec<Vec<usize>> {
    let reachable: Vec<BTreeSet<usize>> = (0..needs.len())
        .map(|node| {
            if stuck.contains(&node) {
                reachable_from(needs, node)
            } else {
                BTreeSet::new()
            }
        })
        .collect();
    let mut grouped = BTreeSet::new();
    let mut found = Vec::new();
    for &node in stuck {
        // A node is on a cycle exactly when it can reach itself.
        if grouped.contains(&node) || !reachable[node].contains(&node) {
            continue;
        }
        let group: BTreeSet<usize> = reachable[node]
            .iter()
            .copied()
            .filter(|&other| reachable[other].contains(&node))
            .collect();
        grouped.extend(group.iter().copied());
        found.push(shortest_cycle(needs, node, &group));
    }
    found
}

/// The nodes reachable from `start` by following at least one edge.
fn reachable_from(needs: &[BTreeSet<usize>], start: usize) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<usize> = needs[start].iter().copied().collect();
    while let Some(node) = queue.pop_front() {
        if seen.insert(node) {
            queue.extend(needs[node].iter().copied());
        }
    }
    seen
}

/// A shortest path `start -> ... -> start` that stays inside `group`.
fn shortest_cycle(needs: &[BTreeSet<usize>], start: usize, group: &BTreeSet<usize>) -> Vec<usize> {
    let mut came_from = vec![None; needs.len()];
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &next in needs[node].iter().filter(|next| group.contains(next)) {
            if next == start {
                let mut path = vec![start, node];
                let mut at = node;
                while let Some(previous) = came_from[at] {
                    path.push(previous);
                    at = previous;
                }
                // Walking back from `node` ends at `start`, the only visited node without a
                // predecessor, so the path is closed at both ends.
                path.reverse();
                return path;
            }
            if next != start && came_from[next].is_none() {
                came_from[next] = Some(node);
                queue.push_back(next);
            }
        }
    }
    // `group` is strongly connected and contains `start`, so the search always returns above;
    // falling back to the lone node keeps the function total without a panic.
    vec![start, start]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_runs_in_dependency_order_whatever_the_file_order() {
        // 0 needs 1, 1 needs 2.
        assert_eq!(
            topological_order(&[vec![1], vec![2], vec![]]),
            Ok(vec![2, 1, 0])
        );
    }

    #[test]
    fn ties_are_broken_by_file_order() {
        // 0 fans out to 1, 2, 3; 4 joins 3 and 1; 5 is independent and comes after 0's branch
        // only because its index is larger than the ready ones.
        let needs = vec![vec![], vec![0], vec![0], vec![0], vec![3, 1], vec![]];
        assert_eq!(topological_order(&needs), Ok(vec![0, 1, 2, 3, 4, 5]));
        // A late-declared root is scheduled as soon as it is the smallest ready index.
        let needs = vec![vec![2], vec![], vec![]];
        assert_eq!(topological_order(&needs), Ok(vec![1, 2, 0]));
    }

    #[test]
    fn duplicate_edges_are_harmless() {
        assert_eq!(topological_order(&[vec![], vec![0, 0, 0]]), Ok(vec![0, 1]));
        assert_eq!(topological_order(&[]), Ok(vec![]));
    }

    #[test]
    fn a_two_step_cycle_is_reported_from_its_first_step() {
        // 0 needs 1 and 1 needs 0; 2 only depends on the cycle and is not part of it.
        let needs = vec![vec![1], vec![0], vec![0]];
        assert_eq!(topological_order(&needs), Err(vec![vec![0, 1, 0]]));
    }

    #[test]
    fn a_self_loop_is_a_cycle_of_one() {
        assert_eq!(topological_order(&[vec![], vec![1]]), Err(vec![vec![1, 1]]));
    }

    #[test]
    fn the_shortest_cycle_of_a_group_is_reported() {
        // 0 -> 1 -> 2 -> 3 -> 0, plus a shortcut 1 -> 0 that closes a shorter loop.
        let needs = vec![vec![1], vec![2, 0], vec![3], vec![0]];
        assert_eq!(topological_order(&needs), Err(vec![vec![0, 1, 0]]));
        // Without the shortcut the whole ring is reported.
        let needs = vec![vec![1], vec![2], vec![3], vec![0]];
        assert_eq!(topological_order(&needs), Err(vec![vec![0, 1, 2, 3, 0]]));
    }

    #[test]
    fn separate_cycles_are_each_reported_once() {
        // Ring 3 -> 4 -> 3 and ring 1 -> 2 -> 0 -> 1, with 5 depending on both.
        let needs = vec![vec![1], vec![2], vec![0], vec![4], vec![3], vec![0, 3]];
        assert_eq!(
            topological_order(&needs),
            Err(vec![vec![0, 1, 2, 0], vec![3, 4, 3]])
        );
    }
}
