package demo

import (
	"fmt"
	"strings"
)

// The sample data is pure SQL: every value is drawn from hash(row number,
// salt), so it does not depend on random(), threads or the clock. Dates
// count back from the fixed anchor 2026-04-01.

// pick returns an element of list chosen by hash(expr, salt); repeating an
// element weights it.
func pick(expr, salt string, list ...string) string {
	quoted := make([]string, len(list))
	for i, s := range list {
		quoted[i] = "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	return fmt.Sprintf("([%s])[(hash(%s, '%s') %% %d)::BIGINT + 1]", strings.Join(quoted, ", "), expr, salt, len(list))
}

// unit returns a uniform number in [0, 1) drawn from hash(expr, salt).
func unit(expr, salt string) string {
	return fmt.Sprintf("((hash(%s, '%s') %% 1000003)::DOUBLE / 1000003)", expr, salt)
}

var firstNames = []string{
	"Emma", "Liam", "Olivia", "Noah", "Ava", "Lucas", "Mia", "Jakub", "Sofia", "Elias",
	"Chloe", "Mateo", "Hannah", "Leon", "Zoe", "Tomas", "Julia", "Oscar", "Lena", "Hugo",
	"Aiko", "Ravi", "Priya", "Chen", "Fatima", "Omar", "Ingrid", "Lars", "Marta", "Pavel",
	"Grace", "Daniel", "Chiara", "Marco", "Eva", "Adam", "Nora", "Felix", "Isabel", "Samuel",
}

var lastNames = []string{
	"Smith", "Novak", "Müller", "Garcia", "Rossi", "Dubois", "Kowalski", "Jensen", "Silva", "Tanaka",
	"Brown", "Svoboda", "Schmidt", "Martinez", "Bianchi", "Laurent", "Nowak", "Hansen", "Santos", "Sato",
	"Wilson", "Dvorak", "Fischer", "Lopez", "Romano", "Moreau", "Wojcik", "Nielsen", "Costa", "Kim",
	"Taylor", "Horak", "Weber", "Sanchez", "Greco", "Petit", "Lewandowski", "Larsen", "Pereira", "Patel",
}

// customersSQL: id 1..500, signups over the three years before the anchor.
var customersSQL = `SELECT
	i::INTEGER AS id,
	first_name || ' ' || last_name AS name,
	lower(strip_accents(first_name)) || '.' || lower(strip_accents(last_name)) || i::VARCHAR || '@' || domain AS email,
	country,
	segment,
	(DATE '2023-04-01' + (hash(i, 'signup') % 1065)::INTEGER) AS signup_date
FROM (
	SELECT i,
		` + pick("i", "first", firstNames...) + ` AS first_name,
		` + pick("i", "last", lastNames...) + ` AS last_name,
		` + pick("i", "domain", "example.com", "example.com", "example.org", "example.net", "mail.example.com") + ` AS domain,
		` + pick("i", "country",
	"United States", "United States", "United States", "United States", "United Kingdom", "United Kingdom",
	"Germany", "Germany", "Germany", "France", "France", "Czechia", "Czechia", "Netherlands", "Canada",
	"Spain", "Poland", "Sweden", "Italy", "Australia", "Japan", "Brazil") + ` AS country,
		` + pick("i", "segment", "Consumer", "Consumer", "Consumer", "Consumer", "Consumer", "Consumer",
	"Small Business", "Small Business", "Small Business", "Enterprise") + ` AS segment
	FROM range(1, 501) t(i)
)`

// productsSQL: id 1..120, 15 per category, list prices in a range that
// suits the category, ending in .99; about one in twelve is discontinued.
var productsSQL = `SELECT
	i::INTEGER AS id,
	` + pick("i", "adjective", "Classic", "Compact", "Deluxe", "Essential", "Eco", "Pro", "Ultra", "Smart",
	"Premium", "Everyday", "Nordic", "Urban", "Vintage", "Lite", "Max", "Studio") + ` || ' ' || nouns[(hash(i, 'noun') % len(nouns))::BIGINT + 1] AS name,
	category,
	greatest(round(lo + (hi - lo) * pow(` + unit("i", "price") + `, 2)) - 0.01, 0.99)::DECIMAL(10,2) AS unit_price,
	` + unit("i", "active") + ` >= 0.08 AS active
FROM range(1, 121) t(i)
JOIN (VALUES
	(0, 'Electronics', ['Headphones', 'Speaker', 'Monitor', 'Keyboard', 'Webcam', 'Charger', 'Tablet', 'Smartwatch'], 19, 899),
	(1, 'Home & Kitchen', ['Kettle', 'Blender', 'Pan Set', 'Knife Block', 'Toaster', 'Coffee Grinder', 'Lamp', 'Rug'], 9, 249),
	(2, 'Books', ['Cookbook', 'Novel', 'Travel Guide', 'Atlas', 'Notebook', 'Biography', 'Field Guide', 'Anthology'], 6, 59),
	(3, 'Sports & Outdoors', ['Yoga Mat', 'Backpack', 'Tent', 'Water Bottle', 'Running Shoes', 'Bike Helmet', 'Dumbbells', 'Jacket'], 12, 399),
	(4, 'Toys & Games', ['Puzzle', 'Board Game', 'Building Set', 'Plush Bear', 'Card Game', 'Kite', 'Train Set', 'Drone'], 7, 149),
	(5, 'Beauty', ['Face Cream', 'Shampoo', 'Perfume', 'Lip Balm', 'Hair Dryer', 'Soap Set', 'Sunscreen', 'Serum'], 4, 119),
	(6, 'Office', ['Desk Chair', 'Pen Set', 'Desk Organizer', 'Stapler', 'Planner', 'Label Printer', 'Whiteboard', 'Desk'], 3, 449),
	(7, 'Garden', ['Hose', 'Pruner', 'Planter', 'Seed Kit', 'Watering Can', 'Gloves', 'Lawn Mower', 'Bird Feeder'], 5, 599)
) c(cat_id, category, nouns, lo, hi) ON c.cat_id = (i - 1) % 8`

// ordersSQL: id 1..5000. Busy customers order more; an order falls
// between its customer's signup (or the start of the 18-month window) and
// the anchor; its status follows its age; the total is quantity times the
// product's list price.
var ordersSQL = `WITH customers AS (` + customersSQL + `), products AS (` + productsSQL + `),
drawn AS (
	SELECT i,
		(floor(500 * pow(` + unit("i", "customer") + `, 1.4)) + 1)::INTEGER AS customer_id,
		((hash(i, 'product') % 120) + 1)::INTEGER AS product_id,
		` + pick("i", "quantity", "1", "1", "1", "1", "1", "1", "1", "1", "2", "2", "2", "3", "3", "4", "5") + `::INTEGER AS quantity,
		` + unit("i", "when") + ` AS when_u,
		` + unit("i", "status") + ` AS status_u,
		` + pick("i", "channel", "web", "web", "web", "web", "web", "mobile_app", "mobile_app", "mobile_app", "marketplace", "phone") + ` AS channel
	FROM range(1, 5001) t(i)
),
timed AS (
	SELECT d.*, p.unit_price,
		greatest(c.signup_date::TIMESTAMP, TIMESTAMP '2024-10-01') AS window_start
	FROM drawn d
	JOIN customers c ON c.id = d.customer_id
	JOIN products p ON p.id = d.product_id
),
placed AS (
	SELECT *,
		window_start + to_seconds((floor(when_u * date_diff('second', window_start, TIMESTAMP '2026-04-01')))::BIGINT) AS ordered_at
	FROM timed
)
SELECT
	i::INTEGER AS id,
	customer_id,
	product_id,
	quantity,
	unit_price,
	(quantity * unit_price)::DECIMAL(12,2) AS total,
	CASE
		WHEN ordered_at >= TIMESTAMP '2026-03-29' THEN CASE WHEN status_u < 0.75 THEN 'processing' ELSE 'shipped' END
		WHEN ordered_at >= TIMESTAMP '2026-03-22' THEN CASE WHEN status_u < 0.6 THEN 'shipped' WHEN status_u < 0.95 THEN 'delivered' ELSE 'cancelled' END
		WHEN status_u < 0.06 THEN 'cancelled'
		WHEN status_u < 0.11 THEN 'returned'
		ELSE 'delivered'
	END AS status,
	ordered_at,
	channel
FROM placed`
