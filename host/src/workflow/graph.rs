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
/// The groups are found with Tarjan's algorithm (iterative, so a long chain cannot overflow
/// the stack) and each cycle with one breadth-first search inside its group: time linear in
/// the nodes and edges, whatever the file holds.
fn cycles(needs: &[BTreeSet<usize>], stuck: &[usize]) -> Vec<Vec<usize>> {
    let mut found: Vec<Vec<usize>> = strongly_connected(needs, stuck)
        .into_iter()
        .filter_map(|group| {
            let start = *group.iter().next()?;
            // A node is on a cycle exactly when its group has another node or it needs itself.
            if group.len() == 1 && !needs[start].contains(&start) {
                return None;
            }
            Some(shortest_cycle(needs, start, &group))
        })
        .collect();
    found.sort();
    found
}

/// The strongly connected groups of the graph restricted to `nodes`, each as a sorted set.
fn strongly_connected(needs: &[BTreeSet<usize>], nodes: &[usize]) -> Vec<BTreeSet<usize>> {
    const UNVISITED: usize = usize::MAX;
    let count = needs.len();
    let mut inside = vec![false; count];
    for &node in nodes {
        inside[node] = true;
    }
    let mut index = vec![UNVISITED; count];
    let mut low = vec![0; count];
    let mut on_stack = vec![false; count];
    let mut stack = Vec::new();
    let mut groups = Vec::new();
    let mut next_index = 0;
    for &root in nodes {
        if index[root] != UNVISITED {
            continue;
        }
        // Each frame: a node and the position of the next of its edges to follow.
        let mut frames: Vec<(usize, std::collections::btree_set::Iter<'_, usize>)> = Vec::new();
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        frames.push((root, needs[root].iter()));
        while let Some((node, edges)) = frames.last_mut() {
            let node = *node;
            match edges.next() {
                Some(&next) if !inside[next] => {}
                Some(&next) if index[next] == UNVISITED => {
                    index[next] = next_index;
                    low[next] = next_index;
                    next_index += 1;
                    stack.push(next);
                    on_stack[next] = true;
                    frames.push((next, needs[next].iter()));
                }
                Some(&next) => {
                    if on_stack[next] {
                        low[node] = low[node].min(index[next]);
                    }
                }
                None => {
                    frames.pop();
                    if let Some((parent, _)) = frames.last() {
                        low[*parent] = low[*parent].min(low[node]);
                    }
                    if low[node] == index[node] {
                        let mut group = BTreeSet::new();
                        while let Some(member) = stack.pop() {
                            on_stack[member] = false;
                            group.insert(member);
                            if member == node {
                                break;
                            }
                        }
                        groups.push(group);
                    }
                }
            }
        }
    }
    groups
}

/// A shortest path `start -> ... -> start` that stays inside `group`, in time linear in the
/// group's size (its bookkeeping is the group's, not the whole graph's).
fn shortest_cycle(needs: &[BTreeSet<usize>], start: usize, group: &BTreeSet<usize>) -> Vec<usize> {
    let mut came_from: std::collections::HashMap<usize, usize> =
        std::collections::HashMap::with_capacity(group.len());
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &next in needs[node].iter().filter(|next| group.contains(next)) {
            if next == start {
                let mut path = vec![start, node];
                let mut at = node;
                while let Some(&previous) = came_from.get(&at) {
                    path.push(previous);
                    at = previous;
                }
                // Walking back from `node` ends at `start`, the only visited node without a
                // predecessor, so the path is closed at both ends.
                path.reverse();
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(entry) = came_from.entry(next) {
                entry.insert(node);
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
    fn a_long_cycle_is_reported_in_linear_time() {
        // 100,000 steps in one ring: pairwise reachability would hold 10^10 entries.
        let count = 100_000;
        let needs: Vec<Vec<usize>> = (0..count).map(|i| vec![(i + 1) % count]).collect();
        let cycles = topological_order(&needs).unwrap_err();
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].len(), count + 1);
        assert_eq!(cycles[0][0], 0);
        // And a long chain orders without recursion.
        let chain: Vec<Vec<usize>> = (0..count)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        assert_eq!(topological_order(&chain).unwrap().len(), count);
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
